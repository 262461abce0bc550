import { createClient, type MatrixClient, type MatrixError } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';

const V3 = '/_matrix/client/v3';

async function session(server: TestServer, user: string, password: string, deviceId?: string) {
  const res = await request(server.baseUrl, 'POST', `${V3}/login`, { body: { type: 'm.login.password', user, password, device_id: deviceId } });
  expect(res.status).toBe(200);
  return res.body as { user_id: string; access_token: string; device_id: string };
}

function clientFor(server: TestServer, s: { user_id: string; access_token: string; device_id: string }): MatrixClient {
  return createClient({ baseUrl: server.baseUrl, accessToken: s.access_token, userId: s.user_id, deviceId: s.device_id });
}

describe.each(testDialects())('devices on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    await server.hs.services.users.createAccountFromCli('gina', 'gina-pw', false);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('lists, shows and renames devices', async () => {
    const s = await session(server, 'gina', 'gina-pw', 'GINAPHONE');
    const client = clientFor(server, s);
    const { devices } = await client.getDevices();
    const mine = devices.find((d) => d.device_id === 'GINAPHONE');
    expect(mine).toBeDefined();
    expect(mine!.last_seen_ts).toBeGreaterThan(0);
    expect(mine!.last_seen_ip).toBeTruthy();

    await client.setDeviceDetails('GINAPHONE', { display_name: 'Renamed' });
    expect((await client.getDevice('GINAPHONE')).display_name).toBe('Renamed');
    const r0 = await request(server.baseUrl, 'GET', '/_matrix/client/r0/devices/GINAPHONE', { token: s.access_token });
    expect(r0.body).toMatchObject({ device_id: 'GINAPHONE', display_name: 'Renamed' });
  });

  it('answers 404 M_NOT_FOUND for unknown devices', async () => {
    const s = await session(server, 'gina', 'gina-pw');
    const get = await request(server.baseUrl, 'GET', `${V3}/devices/NOSUCH`, { token: s.access_token });
    expect(get.status).toBe(404);
    expect(get.body.errcode).toBe('M_NOT_FOUND');
    const put = await request(server.baseUrl, 'PUT', `${V3}/devices/NOSUCH`, { token: s.access_token, body: { display_name: 'x' } });
    expect(put.status).toBe(404);
    expect(put.body.errcode).toBe('M_NOT_FOUND');
    const long = await request(server.baseUrl, 'PUT', `${V3}/devices/${s.device_id}`, { token: s.access_token, body: { display_name: 'x'.repeat(101) } });
    expect(long.status).toBe(400);
  });

  it('deletes a device only after user-interactive auth with the password', async () => {
    const keeper = await session(server, 'gina', 'gina-pw');
    const victim = await session(server, 'gina', 'gina-pw');
    const client = clientFor(server, keeper);

    const err = (await client.deleteDevice(victim.device_id).catch((e: unknown) => e)) as MatrixError;
    expect(err.httpStatus).toBe(401);
    const session1 = err.data.session as string;
    expect(err.data.flows).toEqual([{ stages: ['m.login.password'] }]);

    const wrong = await request(server.baseUrl, 'DELETE', `${V3}/devices/${victim.device_id}`, {
      token: keeper.access_token,
      body: { auth: { type: 'm.login.password', session: session1, identifier: { type: 'm.id.user', user: 'gina' }, password: 'bad' } },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.errcode).toBe('M_FORBIDDEN');
    expect(wrong.body.flows).toEqual([{ stages: ['m.login.password'] }]);
    expect(wrong.body.session).toBe(session1);

    // A session started for one device cannot authorise deleting another.
    const moved = await request(server.baseUrl, 'DELETE', `${V3}/devices/${keeper.device_id}`, {
      token: keeper.access_token,
      body: { auth: { type: 'm.login.password', session: session1, user: '@gina:localhost', password: 'gina-pw' } },
    });
    expect(moved.status).toBe(403);

    await client.deleteDevice(victim.device_id, { type: 'm.login.password', session: session1, identifier: { type: 'm.id.user', user: '@gina:localhost' }, password: 'gina-pw' } as never);
    expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: victim.access_token })).status).toBe(401);
    expect((await client.getDevices()).devices.map((d) => d.device_id)).not.toContain(victim.device_id);
    expect((await client.whoami()).device_id).toBe(keeper.device_id);
  });

  it('deletes several devices with POST /delete_devices', async () => {
    const keeper = await session(server, 'gina', 'gina-pw');
    const a = await session(server, 'gina', 'gina-pw');
    const b = await session(server, 'gina', 'gina-pw');
    const client = clientFor(server, keeper);
    const deleted: string[][] = [];
    server.hs.services.users.onDevicesDeleted.push((_user, ids) => void deleted.push([...ids].sort()));
    await client.deleteMultipleDevices([a.device_id, b.device_id], {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'gina' },
      password: 'gina-pw',
    } as never);
    for (const token of [a.access_token, b.access_token]) {
      expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token })).status).toBe(401);
    }
    expect(deleted).toContainEqual([a.device_id, b.device_id].sort());
  });

  it('does not let one user delete another user\'s device', async () => {
    await server.hs.services.users.createAccountFromCli('hank', 'hank-pw', false);
    const gina = await session(server, 'gina', 'gina-pw');
    const hank = await session(server, 'hank', 'hank-pw');
    const res = await request(server.baseUrl, 'POST', `${V3}/delete_devices`, {
      token: hank.access_token,
      body: { devices: [gina.device_id], auth: { type: 'm.login.password', user: 'hank', password: 'hank-pw' } },
    });
    expect(res.status).toBe(200);
    expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: gina.access_token })).status).toBe(200);
    // Nor authenticate as another user inside UIA.
    const spoof = await request(server.baseUrl, 'POST', `${V3}/delete_devices`, {
      token: hank.access_token,
      body: { devices: [hank.device_id], auth: { type: 'm.login.password', user: 'gina', password: 'gina-pw' } },
    });
    // Someone else's credentials end the request with 403, as Synapse (SyTest: "requires UI auth user to match device owner").
    expect(spoof.status).toBe(403);
    expect(spoof.body.errcode).toBe('M_FORBIDDEN');
    const other = await session(server, 'gina', 'gina-pw', 'GINAOTHER');
    const stolen = await request(server.baseUrl, 'DELETE', `${V3}/devices/GINAOTHER`, {
      token: gina.access_token,
      body: { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: '@hank:localhost' }, password: 'hank-pw' } },
    });
    expect(stolen.status).toBe(403);
    expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: other.access_token })).status).toBe(200);
  });

  it('validates bodies', async () => {
    const s = await session(server, 'gina', 'gina-pw');
    const res = await request(server.baseUrl, 'POST', `${V3}/delete_devices`, { token: s.access_token, body: { devices: 'ABC' } });
    expect(res.status).toBe(400);
    expect(res.body.errcode).toBe('M_BAD_JSON');
    const missing = await request(server.baseUrl, 'POST', `${V3}/delete_devices`, { token: s.access_token, body: {} });
    expect(missing.body.errcode).toBe('M_MISSING_PARAM');
  });
});
