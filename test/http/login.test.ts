import { createClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';

const V3 = '/_matrix/client/v3';

async function register(server: TestServer, username: string, password: string, extra: Record<string, unknown> = {}) {
  const res = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username, password, auth: { type: 'm.login.dummy' }, ...extra } });
  expect(res.status).toBe(200);
  return res.body as { user_id: string; access_token: string; device_id: string; refresh_token?: string; expires_in_ms?: number };
}

function login(server: TestServer, body: Record<string, unknown>) {
  return request(server.baseUrl, 'POST', `${V3}/login`, { body: { type: 'm.login.password', ...body } });
}

describe.each(testDialects())('login and logout on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    await register(server, 'carol', 'carol-pw');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('lists the password flow', async () => {
    const client = createClient({ baseUrl: server.baseUrl });
    const { flows } = await client.loginFlows();
    expect(flows.map((f) => f.type)).toContain('m.login.password');
    const r0 = await request(server.baseUrl, 'GET', '/_matrix/client/r0/login');
    expect(r0.status).toBe(200);
  });

  it('logs in through matrix-js-sdk with an m.id.user identifier', async () => {
    const client = createClient({ baseUrl: server.baseUrl });
    const res = await client.loginRequest({
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'carol' },
      password: 'carol-pw',
      initial_device_display_name: 'Laptop',
    });
    expect(res.user_id).toBe('@carol:localhost');
    expect(res.access_token).toMatch(/^skj_/);
    expect(res.well_known?.['m.homeserver']?.base_url).toMatch(/^http/);
    const authed = createClient({ baseUrl: server.baseUrl, accessToken: res.access_token, userId: res.user_id });
    const who = await authed.whoami();
    expect(who.user_id).toBe('@carol:localhost');
    expect(who.device_id).toBe(res.device_id);
    const dev = await authed.getDevice(res.device_id);
    expect(dev.display_name).toBe('Laptop');
  });

  it('accepts the legacy user field, full user ids and a differently-cased id', async () => {
    for (const user of ['carol', '@carol:localhost', '@CAROL:localhost']) {
      const res = await login(server, { user, password: 'carol-pw' });
      expect(res.status, user).toBe(200);
      expect(res.body.user_id).toBe('@carol:localhost');
    }
    const legacy = createClient({ baseUrl: server.baseUrl });
    expect((await legacy.loginWithPassword('@carol:localhost', 'carol-pw')).user_id).toBe('@carol:localhost');
  });

  it('refuses a wrong password or unknown user with 403 M_FORBIDDEN', async () => {
    const wrong = await login(server, { identifier: { type: 'm.id.user', user: 'carol' }, password: 'nope' });
    expect(wrong.status).toBe(403);
    expect(wrong.body.errcode).toBe('M_FORBIDDEN');
    const unknown = await login(server, { identifier: { type: 'm.id.user', user: 'nobody' }, password: 'nope' });
    expect(unknown.status).toBe(403);
    expect(unknown.body.errcode).toBe('M_FORBIDDEN');
    const remote = await login(server, { identifier: { type: 'm.id.user', user: '@carol:elsewhere' }, password: 'carol-pw' });
    expect(remote.status).toBe(403);
  });

  it('rejects unknown login types and malformed bodies', async () => {
    const type = await request(server.baseUrl, 'POST', `${V3}/login`, { body: { type: 'm.login.magic' } });
    expect(type.status).toBe(400);
    expect(type.body.errcode).toBe('M_UNKNOWN');
    const third = await login(server, { identifier: { type: 'm.id.thirdparty', medium: 'email', address: 'a@b.c' }, password: 'x' });
    expect(third.status).toBe(400);
    const notJson = await request(server.baseUrl, 'POST', `${V3}/login`, { rawBody: 'not json' });
    expect(notJson.body.errcode).toBe('M_NOT_JSON');
    const badType = await request(server.baseUrl, 'POST', `${V3}/login`, { body: { type: 5 } });
    expect(badType.body.errcode).toBe('M_BAD_JSON');
    const missing = await request(server.baseUrl, 'POST', `${V3}/login`, { body: {} });
    expect(missing.status).toBe(400);
  });

  it('reuses a device id: the old token of that device stops working, the device stays', async () => {
    const a = await login(server, { user: 'carol', password: 'carol-pw', device_id: 'REUSED', initial_device_display_name: 'First' });
    const b = await login(server, { user: 'carol', password: 'carol-pw', device_id: 'REUSED', initial_device_display_name: 'Second' });
    expect(b.body.device_id).toBe('REUSED');
    const old = await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: a.body.access_token });
    expect(old.status).toBe(401);
    expect(old.body.errcode).toBe('M_UNKNOWN_TOKEN');
    const dev = await request(server.baseUrl, 'GET', `${V3}/devices/REUSED`, { token: b.body.access_token });
    expect(dev.body.display_name).toBe('First');
  });

  it('logout invalidates the token and removes the device', async () => {
    const s = await login(server, { user: 'carol', password: 'carol-pw' });
    const other = await login(server, { user: 'carol', password: 'carol-pw' });
    const client = createClient({ baseUrl: server.baseUrl, accessToken: s.body.access_token, userId: s.body.user_id });
    await client.logout();
    const after = await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: s.body.access_token });
    expect(after.status).toBe(401);
    expect(after.body.errcode).toBe('M_UNKNOWN_TOKEN');
    expect(after.body.soft_logout).toBeUndefined();
    const devices = await request(server.baseUrl, 'GET', `${V3}/devices`, { token: other.body.access_token });
    expect(devices.body.devices.map((d: { device_id: string }) => d.device_id)).not.toContain(s.body.device_id);
  });

  it('logout/all ends every session of the user', async () => {
    const dave = await register(server, 'dave', 'dave-pw');
    const second = await login(server, { user: 'dave', password: 'dave-pw' });
    const res = await request(server.baseUrl, 'POST', `${V3}/logout/all`, { token: second.body.access_token });
    expect(res.status).toBe(200);
    for (const token of [dave.access_token, second.body.access_token]) {
      expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token })).status).toBe(401);
    }
    const fresh = await login(server, { user: 'dave', password: 'dave-pw' });
    const devices = await request(server.baseUrl, 'GET', `${V3}/devices`, { token: fresh.body.access_token });
    expect(devices.body.devices).toHaveLength(1);
  });

  it('requires a token where one is needed', async () => {
    const none = await request(server.baseUrl, 'GET', `${V3}/account/whoami`);
    expect(none.status).toBe(401);
    expect(none.body.errcode).toBe('M_MISSING_TOKEN');
    const bogus = await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: 'skj_bogus' });
    expect(bogus.body.errcode).toBe('M_UNKNOWN_TOKEN');
  });

  it('issues refresh tokens on request even without a configured lifetime', async () => {
    const res = await login(server, { user: 'carol', password: 'carol-pw', refresh_token: true });
    expect(res.body.refresh_token).toMatch(/^skr_/);
    expect(res.body.expires_in_ms).toBeUndefined();
    const unknown = await request(server.baseUrl, 'POST', `${V3}/refresh`, { body: { refresh_token: 'skr_unknown' } });
    expect(unknown.status).toBe(401);
    expect(unknown.body.errcode).toBe('M_UNKNOWN_TOKEN');
  });
});

describe.each(testDialects())('refresh tokens on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver({ dialect, config: { access_token_lifetime_ms: 1000 } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('expires access tokens with soft_logout and rotates refresh tokens', async () => {
    const reg = await register(server, 'erin', 'erin-pw', { refresh_token: true });
    expect(reg.expires_in_ms).toBe(1000);
    expect(reg.refresh_token).toBeDefined();
    expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: reg.access_token })).status).toBe(200);

    await new Promise((r) => setTimeout(r, 1100));
    const expired = await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: reg.access_token });
    expect(expired.status).toBe(401);
    expect(expired.body).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: true });

    const client = createClient({ baseUrl: server.baseUrl });
    const first = await client.refreshToken(reg.refresh_token!);
    expect(first.access_token).not.toBe(reg.access_token);
    expect(first.refresh_token).not.toBe(reg.refresh_token);
    expect(first.expires_in_ms).toBe(1000);

    // Until the new pair is used, the old refresh token still works (spec), superseding the unused pair.
    const second = await request(server.baseUrl, 'POST', `${V3}/refresh`, { body: { refresh_token: reg.refresh_token } });
    expect(second.status).toBe(200);
    expect((await request(server.baseUrl, 'POST', `${V3}/refresh`, { body: { refresh_token: first.refresh_token } })).status).toBe(401);

    // Using the new access token revokes the old refresh token.
    const who = await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: second.body.access_token });
    expect(who.body.device_id).toBe(reg.device_id);
    const reuse = await request(server.baseUrl, 'POST', `${V3}/refresh`, { body: { refresh_token: reg.refresh_token } });
    expect(reuse.status).toBe(401);
    expect(reuse.body.errcode).toBe('M_UNKNOWN_TOKEN');

    // The rotated refresh token keeps working, once.
    const third = await request(server.baseUrl, 'POST', `${V3}/refresh`, { body: { refresh_token: second.body.refresh_token } });
    expect(third.status).toBe(200);
    expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: third.body.access_token })).status).toBe(200);
    expect((await request(server.baseUrl, 'POST', `${V3}/refresh`, { body: { refresh_token: second.body.refresh_token } })).status).toBe(401);
    expect((await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: second.body.access_token })).status).toBe(401);
  });

  it('does not expire tokens of clients that do not support refresh', async () => {
    const reg = await register(server, 'frank', 'frank-pw');
    expect(reg.expires_in_ms).toBeUndefined();
    expect(reg.refresh_token).toBeUndefined();
  });

  it('refresh is a v3 endpoint only', async () => {
    const res = await request(server.baseUrl, 'POST', '/_matrix/client/r0/refresh', { body: { refresh_token: 'x' } });
    expect(res.status).toBe(404);
  });
});
