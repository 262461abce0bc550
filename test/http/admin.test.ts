import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { loginDevice, registerUser } from '../helpers/users.js';

const PATH = '/_synapse/admin/v1/register';
const SECRET = 'shhh-its-a-secret';

function mac(secret: string, nonce: string, username: string, password: string, admin: boolean): string {
  return createHmac('sha1', secret)
    .update(`${nonce}\0${username}\0${password}\0${admin ? 'admin' : 'notadmin'}`)
    .digest('hex');
}

describe.each(testDialects())('shared-secret registration on %s', (dialect) => {
  let server: TestServer;
  let disabled: TestServer;
  beforeAll(async () => {
    [server, disabled] = await Promise.all([
      startHomeserver({ dialect, config: { registration_shared_secret: SECRET, enable_registration: false } }),
      startHomeserver({ dialect }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([server?.close(), disabled?.close()]);
  });

  async function nonce(): Promise<string> {
    const res = await request(server.baseUrl, 'GET', PATH);
    expect(res.status).toBe(200);
    return res.body.nonce as string;
  }

  it('registers an admin with a correct MAC, even with public registration off', async () => {
    const n = await nonce();
    const res = await request(server.baseUrl, 'POST', PATH, {
      body: { nonce: n, username: 'root', password: 'root-pw', admin: true, mac: mac(SECRET, n, 'root', 'root-pw', true) },
    });
    expect(res.status).toBe(200);
    expect(res.body.user_id).toBe('@root:localhost');
    expect(res.body.access_token).toMatch(/^skj_/);
    expect(res.body.home_server).toBe('localhost');
    expect(await server.hs.services.users.isAdmin('@root:localhost')).toBe(true);
    const who = await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: res.body.access_token });
    expect(who.body.user_id).toBe('@root:localhost');
  });

  it('refuses a wrong MAC with 403 and a reused nonce with 400', async () => {
    const n = await nonce();
    const wrong = await request(server.baseUrl, 'POST', PATH, {
      body: { nonce: n, username: 'mallory', password: 'pw', admin: true, mac: mac(SECRET, n, 'mallory', 'pw', false) },
    });
    expect(wrong.status).toBe(403);
    expect(wrong.body.errcode).toBe('M_FORBIDDEN');

    const n2 = await nonce();
    const body = { nonce: n2, username: 'once', password: 'pw', mac: mac(SECRET, n2, 'once', 'pw', false) };
    expect((await request(server.baseUrl, 'POST', PATH, { body })).status).toBe(200);
    const reused = await request(server.baseUrl, 'POST', PATH, { body });
    expect(reused.status).toBe(400);
    expect(reused.body.errcode).toBe('M_UNKNOWN');
    // The first attempt with a wrong MAC spent its nonce too.
    const retry = await request(server.baseUrl, 'POST', PATH, {
      body: { nonce: n, username: 'mallory', password: 'pw', mac: mac(SECRET, n, 'mallory', 'pw', false) },
    });
    expect(retry.status).toBe(400);
  });

  it('reports missing fields and taken names like Synapse', async () => {
    const n = await nonce();
    const missing = await request(server.baseUrl, 'POST', PATH, { body: { nonce: n, password: 'pw', mac: 'x' } });
    expect(missing.status).toBe(400);
    expect(missing.body.errcode).toBe('M_BAD_JSON');
    const n2 = await nonce();
    const taken = await request(server.baseUrl, 'POST', PATH, {
      body: { nonce: n2, username: 'root', password: 'pw', mac: mac(SECRET, n2, 'root', 'pw', false) },
    });
    expect(taken.status).toBe(400);
    expect(taken.body.errcode).toBe('M_USER_IN_USE');
    const unknown = await request(server.baseUrl, 'POST', PATH, { body: { nonce: 'made-up', username: 'x', password: 'pw', mac: 'x' } });
    expect(unknown.status).toBe(400);
  });

  it('is disabled without a configured secret', async () => {
    expect((await request(disabled.baseUrl, 'GET', PATH)).status).toBe(400);
    const res = await request(disabled.baseUrl, 'POST', PATH, { body: { nonce: 'x', username: 'x', password: 'x', mac: 'x' } });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/not enabled/);
  });
});

// Element asks whether the user is a server admin to offer admin tools; Synapse answers 200 or 403.
describe.each(testDialects())('Synapse admin: is a user an admin, on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver({ dialect });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('answers a server admin with the flag and anyone else with 403 M_FORBIDDEN', async () => {
    await server.hs.services.users.createAccountFromCli('boss', 'boss-pw', true);
    const boss = await loginDevice(server.baseUrl, { userId: '@boss:localhost', accessToken: '', deviceId: '', password: 'boss-pw' });
    const carol = await registerUser(server.baseUrl, 'carol');
    const ask = (token: string, userId: string) =>
      request(server.baseUrl, 'GET', `/_synapse/admin/v1/users/${encodeURIComponent(userId)}/admin`, { token, skipSpecCheck: true });

    expect(await ask(boss.accessToken, boss.userId)).toMatchObject({ status: 200, body: { admin: true } });
    expect(await ask(boss.accessToken, carol.userId)).toMatchObject({ status: 200, body: { admin: false } });
    expect(await ask(carol.accessToken, carol.userId)).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
    expect(await ask(boss.accessToken, '@someone:elsewhere.example')).toMatchObject({ status: 400, body: { errcode: 'M_INVALID_PARAM' } });
    expect((await request(server.baseUrl, 'GET', `/_synapse/admin/v1/users/${encodeURIComponent(carol.userId)}/admin`)).status).toBe(401);
  });

  // Spec: GET /_matrix/client/v3/admin/whois/{userId} (SyTest "/whois").
  it('whois: a user sees their own devices and connections; others need to be admins', async () => {
    const dave = await registerUser(server.baseUrl, 'dave');
    const erin = await registerUser(server.baseUrl, 'erin');
    const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/admin/whois/${encodeURIComponent(dave.userId)}`, { token: dave.accessToken });
    expect(res.status).toBe(200);
    expect(res.body.user_id).toBe(dave.userId);
    const device = res.body.devices[dave.deviceId];
    expect(device.sessions[0].connections[0]).toMatchObject({ ip: expect.any(String), last_seen: expect.any(Number), user_agent: expect.any(String) });
    const other = await request(server.baseUrl, 'GET', `/_matrix/client/r0/admin/whois/${encodeURIComponent(dave.userId)}`, { token: erin.accessToken });
    expect(other).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
  });
});

