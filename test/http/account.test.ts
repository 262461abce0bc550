import { createClient, type MatrixError } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';

const V3 = '/_matrix/client/v3';

async function login(server: TestServer, user: string, password: string) {
  return request(server.baseUrl, 'POST', `${V3}/login`, { body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password } });
}

describe.each(testDialects())('account management on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver({ dialect });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('changes the password: other devices are logged out, the current one stays', async () => {
    await server.hs.services.users.createAccountFromCli('ivan', 'old-pw', false);
    const current = (await login(server, 'ivan', 'old-pw')).body;
    const other = (await login(server, 'ivan', 'old-pw')).body;
    const client = createClient({ baseUrl: server.baseUrl, accessToken: current.access_token, userId: current.user_id });

    const err = (await client.setPassword({} as never, 'new-pw').catch((e: unknown) => e)) as MatrixError;
    expect(err.httpStatus).toBe(401);
    await client.setPassword({ type: 'm.login.password', session: err.data.session, identifier: { type: 'm.id.user', user: 'ivan' }, password: 'old-pw' } as never, 'new-pw');

    expect((await client.whoami()).device_id).toBe(current.device_id);
    expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: other.access_token })).status).toBe(401);
    expect((await login(server, 'ivan', 'old-pw')).status).toBe(403);
    expect((await login(server, 'ivan', 'new-pw')).status).toBe(200);
  });

  it('keeps other devices when logout_devices is false', async () => {
    await server.hs.services.users.createAccountFromCli('judy', 'pw-1', false);
    const current = (await login(server, 'judy', 'pw-1')).body;
    const other = (await login(server, 'judy', 'pw-1')).body;
    const res = await request(server.baseUrl, 'POST', `${V3}/account/password`, {
      token: current.access_token,
      body: { new_password: 'pw-2', logout_devices: false, auth: { type: 'm.login.password', user: 'judy', password: 'pw-1' } },
    });
    expect(res.status).toBe(200);
    expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: other.access_token })).status).toBe(200);
    const wrong = await request(server.baseUrl, 'POST', `${V3}/account/password`, {
      token: current.access_token,
      body: { new_password: 'pw-3', auth: { type: 'm.login.password', user: 'judy', password: 'pw-1' } },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.errcode).toBe('M_FORBIDDEN');
  });

  // SyTest "Can't deactivate account with wrong password": 401 M_FORBIDDEN with flows, params, session and completed.
  it('a wrong password in a UIA stage answers 401 M_FORBIDDEN listing completed stages', async () => {
    await server.hs.services.users.createAccountFromCli('wrongpw', 'right-pw', false);
    const token = (await login(server, 'wrongpw', 'right-pw')).body.access_token;
    const res = await request(server.baseUrl, 'POST', `${V3}/account/deactivate`, {
      token,
      body: { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: '@wrongpw:localhost' }, password: 'wrong password' } },
    });
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ errcode: 'M_FORBIDDEN', completed: [], params: {} });
    expect(typeof res.body.error).toBe('string');
    expect(typeof res.body.session).toBe('string');
    expect(Array.isArray(res.body.flows)).toBe(true);
  });

  it('deactivates: tokens die, login is refused with M_USER_DEACTIVATED, the name stays taken', async () => {
    const reg = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username: 'karl', password: 'karl-pw', auth: { type: 'm.login.dummy' } } });
    const client = createClient({ baseUrl: server.baseUrl, accessToken: reg.body.access_token, userId: reg.body.user_id });
    const deactivated: string[] = [];
    server.hs.services.users.onDeactivated.push((userId, { erase }) => void deactivated.push(`${userId}:${erase}`));

    const err = (await client.deactivateAccount().catch((e: unknown) => e)) as MatrixError;
    expect(err.httpStatus).toBe(401);
    expect(err.data.flows).toEqual([{ stages: ['m.login.password'] }]);
    const res = await client.deactivateAccount({ type: 'm.login.password', session: err.data.session, user: 'karl', password: 'karl-pw' } as never, true);
    expect(res).toEqual({ id_server_unbind_result: 'success' });
    expect(deactivated).toEqual(['@karl:localhost:true']);

    expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: reg.body.access_token })).body.errcode).toBe('M_UNKNOWN_TOKEN');
    const again = await login(server, 'karl', 'karl-pw');
    expect(again.status).toBe(403);
    expect(again.body.errcode).toBe('M_USER_DEACTIVATED');
    const taken = await request(server.baseUrl, 'GET', `${V3}/register/available?username=karl`);
    expect(taken.body.errcode).toBe('M_USER_IN_USE');
  });

  it('serves whoami and capabilities', async () => {
    const reg = await request(server.baseUrl, 'POST', '/_matrix/client/r0/register', { body: { username: 'lena', password: 'pw', auth: { type: 'm.login.dummy' } } });
    const client = createClient({ baseUrl: server.baseUrl, accessToken: reg.body.access_token, userId: reg.body.user_id });
    expect(await client.whoami()).toEqual({ user_id: '@lena:localhost', device_id: reg.body.device_id, is_guest: false });
    const caps = await request(server.baseUrl, 'GET', `${V3}/capabilities`, { token: reg.body.access_token });
    expect(caps.body.capabilities['m.change_password']).toEqual({ enabled: true });
    expect(caps.body.capabilities['m.room_versions'].default).toBe('10');
    expect(caps.body.capabilities['m.room_versions'].available['11']).toBe('stable');
    expect(caps.body.capabilities['m.3pid_changes']).toEqual({ enabled: false });
    const sdkCaps = await client.getCapabilities();
    expect(sdkCaps['m.set_displayname']).toEqual({ enabled: true });
  });
});
