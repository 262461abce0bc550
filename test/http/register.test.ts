import { createClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';

const V3 = '/_matrix/client/v3';

describe.each(testDialects())('registration on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver({ dialect, config: { allow_guest_access: true } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('runs user-interactive auth: 401 with flows and a session, then m.login.dummy registers', async () => {
    const first = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username: 'uia_alice', password: 'pw-alice' } });
    expect(first.status).toBe(401);
    expect(first.body.flows).toEqual([{ stages: ['m.login.dummy'] }]);
    expect(first.body.params).toEqual({});
    expect(typeof first.body.session).toBe('string');
    expect(first.body.errcode).toBeUndefined();

    const second = await request(server.baseUrl, 'POST', `${V3}/register`, {
      body: { username: 'uia_alice', password: 'pw-alice', initial_device_display_name: 'Phone', auth: { type: 'm.login.dummy', session: first.body.session } },
    });
    expect(second.status).toBe(200);
    expect(second.body.user_id).toBe('@uia_alice:localhost');
    expect(second.body.access_token).toMatch(/^skj_/);
    expect(typeof second.body.device_id).toBe('string');
    expect(second.body.refresh_token).toBeUndefined();
    expect(second.body.expires_in_ms).toBeUndefined();

    const whoami = await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: second.body.access_token });
    expect(whoami.body).toEqual({ user_id: '@uia_alice:localhost', device_id: second.body.device_id, is_guest: false });
    const device = await request(server.baseUrl, 'GET', `${V3}/devices/${second.body.device_id}`, { token: second.body.access_token });
    expect(device.body.display_name).toBe('Phone');

    // The session is spent once the account exists.
    const replay = await request(server.baseUrl, 'POST', `${V3}/register`, {
      body: { username: 'uia_other', password: 'pw', auth: { type: 'm.login.dummy', session: first.body.session } },
    });
    expect(replay.status).toBe(400);
  });

  // SyTest "registration is idempotent, with/without username specified" (as Synapse's registered_user_id).
  it('a completed session repeated answers for the same account, with or without a username', async () => {
    for (const username of ['idem_alice', undefined]) {
      const named = username !== undefined ? { username } : {};
      const first = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { ...named, password: 'pw-idem' } });
      expect(first.status).toBe(401);
      const auth = { type: 'm.login.dummy', session: first.body.session };
      const done = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { ...named, password: 'pw-idem', auth } });
      expect(done.status).toBe(200);
      const again = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { ...named, password: 'pw-idem', auth } });
      expect(again.status).toBe(200);
      expect(again.body.user_id).toBe(done.body.user_id);
      expect(typeof again.body.access_token).toBe('string');
      if (username) expect(done.body.user_id).toBe(`@${username}:localhost`);
    }
  });

  // SyTest "registration remembers parameters" and "registration with inhibit_login inhibits login".
  it('the session remembers the first request: username, password, device, inhibit_login', async () => {
    const first = await request(server.baseUrl, 'POST', `${V3}/register`, {
      body: { username: 'remember_me', password: 'pw-remember', device_id: 'xyzzy', initial_device_display_name: 'display_name' },
    });
    expect(first.status).toBe(401);
    const done = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { auth: { type: 'm.login.dummy', session: first.body.session } } });
    expect(done.status).toBe(200);
    expect(done.body.user_id).toBe('@remember_me:localhost');
    expect(done.body.device_id).toBe('xyzzy');
    const device = await request(server.baseUrl, 'GET', `${V3}/devices/xyzzy`, { token: done.body.access_token });
    expect(device.body.display_name).toBe('display_name');
    const login = await request(server.baseUrl, 'POST', `${V3}/login`, {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'remember_me' }, password: 'pw-remember' },
    });
    expect(login.status).toBe(200);

    const inhibit = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username: 'inhibited', password: 'pw', inhibit_login: true } });
    const inhibited = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { auth: { type: 'm.login.dummy', session: inhibit.body.session } } });
    expect(inhibited.status).toBe(200);
    expect(inhibited.body.user_id).toBe('@inhibited:localhost');
    expect(inhibited.body.access_token).toBeUndefined();
    expect(inhibited.body.device_id).toBeUndefined();
  });

  // SyTest "POST /register rejects registration of usernames with '\n'": refused, not trimmed into another name.
  it('refuses a username with surrounding whitespace with M_INVALID_USERNAME', async () => {
    await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username: 'ws_user', password: 'pw', auth: { type: 'm.login.dummy' } } });
    for (const username of ['ws_user\n', ' ws_user']) {
      const res = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username, password: 'pw', auth: { type: 'm.login.dummy' } } });
      expect(res.status).toBe(400);
      expect(res.body.errcode).toBe('M_INVALID_USERNAME');
    }
  });

  it('registers through matrix-js-sdk, with a chosen device id and a mapped (lowercased) username', async () => {
    const client = createClient({ baseUrl: server.baseUrl });
    // The SDK's type leaves out device_id, which the spec allows.
    const body = { username: 'SdkBob', password: 'pw-bob', device_id: 'BOBDEVICE', auth: { type: 'm.login.dummy' } };
    const res = await client.registerRequest(body);
    expect(res.user_id).toBe('@sdkbob:localhost');
    expect(res.device_id).toBe('BOBDEVICE');
    const authed = createClient({ baseUrl: server.baseUrl, accessToken: res.access_token!, userId: res.user_id });
    expect((await authed.whoami()).device_id).toBe('BOBDEVICE');
  });

  it('refuses a taken username before UIA with M_USER_IN_USE, and reports availability', async () => {
    await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username: 'taken', password: 'pw', auth: { type: 'm.login.dummy' } } });
    const again = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username: 'taken', password: 'pw' } });
    expect(again.status).toBe(400);
    expect(again.body.errcode).toBe('M_USER_IN_USE');

    const avail = await request(server.baseUrl, 'GET', `${V3}/register/available?username=taken`);
    expect(avail.status).toBe(400);
    expect(avail.body.errcode).toBe('M_USER_IN_USE');
    const free = await request(server.baseUrl, 'GET', '/_matrix/client/r0/register/available?username=nobody_yet');
    expect(free.body).toEqual({ available: true });
    const client = createClient({ baseUrl: server.baseUrl });
    expect(await client.isUsernameAvailable('nobody_yet')).toBe(true);
  });

  it.each(['has space', 'colon:inside', 'ünïcode', 'x'.repeat(300), ''])('refuses the invalid username %j with M_INVALID_USERNAME', async (username) => {
    const res = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username, password: 'pw', auth: { type: 'm.login.dummy' } } });
    expect(res.status).toBe(400);
    expect(res.body.errcode).toBe('M_INVALID_USERNAME');
  });

  it('generates a localpart when no username is given, and honours inhibit_login', async () => {
    const res = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { password: 'pw', inhibit_login: true, auth: { type: 'm.login.dummy' } } });
    expect(res.status).toBe(200);
    expect(res.body.user_id).toMatch(/^@[a-z0-9]+:localhost$/);
    expect(res.body.access_token).toBeUndefined();
    expect(res.body.device_id).toBeUndefined();
    const login = await request(server.baseUrl, 'POST', `${V3}/login`, {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: res.body.user_id }, password: 'pw' },
    });
    expect(login.status).toBe(200);
  });

  it('refuses guest registration when allow_guest_access is off (the default)', async () => {
    const closed = await startHomeserver({ dialect });
    try {
      const res = await request(closed.baseUrl, 'POST', `${V3}/register?kind=guest`, { body: {} });
      expect(res.status).toBe(403);
      expect(res.body.errcode).toBe('M_GUEST_ACCESS_FORBIDDEN');
    } finally {
      await closed.close();
    }
  });

  it('registers guests, who are refused where guests may not go', async () => {
    const res = await request(server.baseUrl, 'POST', `${V3}/register?kind=guest`, {
      body: { username: 'ignored_for_guests', device_id: 'IGNORED', initial_device_display_name: 'Guest phone' },
    });
    expect(res.status).toBe(200);
    expect(res.body.user_id).not.toContain('ignored_for_guests');
    expect(res.body.device_id).not.toBe('IGNORED');
    const whoami = await request(server.baseUrl, 'GET', `${V3}/account/whoami`, { token: res.body.access_token });
    expect(whoami.body.is_guest).toBe(true);
    const deactivate = await request(server.baseUrl, 'POST', `${V3}/account/deactivate`, { token: res.body.access_token, body: {} });
    expect(deactivate.status).toBe(403);
    expect(deactivate.body.errcode).toBe('M_GUEST_ACCESS_FORBIDDEN');
  });

  it('answers bad JSON with M_NOT_JSON and wrong types with M_BAD_JSON', async () => {
    const notJson = await request(server.baseUrl, 'POST', `${V3}/register`, { rawBody: '{"username": ', headers: { 'content-type': 'application/json' } });
    expect(notJson.status).toBe(400);
    expect(notJson.body.errcode).toBe('M_NOT_JSON');
    const badType = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username: 42, password: 'pw' } });
    expect(badType.status).toBe(400);
    expect(badType.body.errcode).toBe('M_BAD_JSON');
    const array = await request(server.baseUrl, 'POST', `${V3}/register`, { body: [1, 2] });
    expect(array.body.errcode).toBe('M_BAD_JSON');
    const badKind = await request(server.baseUrl, 'POST', `${V3}/register?kind=admin`, { body: {} });
    expect(badKind.status).toBe(400);
  });

  it('offers hooks for application services: token resolution and exclusive namespaces', async () => {
    const users = server.hs.services.users;
    users.hooks.authenticators.push(async (token) =>
      token === 'as-token-bridge'
        ? { userId: '@bridgebot:localhost', deviceId: undefined, tokenId: undefined, isGuest: false, appserviceId: 'bridge' }
        : undefined,
    );
    users.hooks.exclusiveNamespaces.push((userId, asId) => userId.startsWith('@bridge_') !== (asId === 'bridge'));

    const exclusive = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username: 'bridge_bob', password: 'pw' } });
    expect(exclusive.status).toBe(400);
    expect(exclusive.body.errcode).toBe('M_EXCLUSIVE');

    const asReg = await request(server.baseUrl, 'POST', `${V3}/register`, {
      token: 'as-token-bridge',
      body: { type: 'm.login.application_service', username: 'bridge_bob', inhibit_login: true },
    });
    expect(asReg.status).toBe(200);
    expect(asReg.body).toEqual({ user_id: '@bridge_bob:localhost', home_server: 'localhost' });
    expect((await users.getUser('@bridge_bob:localhost'))?.appserviceId).toBe('bridge');

    const outside = await request(server.baseUrl, 'POST', `${V3}/register`, {
      token: 'as-token-bridge',
      body: { type: 'm.login.application_service', username: 'not_bridged', inhibit_login: true },
    });
    expect(outside.body.errcode).toBe('M_EXCLUSIVE');
  });

  it('rejects an unknown UIA session and an unoffered stage', async () => {
    const unknown = await request(server.baseUrl, 'POST', `${V3}/register`, {
      body: { username: 'sess_x', password: 'pw', auth: { type: 'm.login.dummy', session: 'nope' } },
    });
    expect(unknown.status).toBe(400);
    const stage = await request(server.baseUrl, 'POST', `${V3}/register`, {
      body: { username: 'sess_x', password: 'pw', auth: { type: 'm.login.registration_token', token: 'x' } },
    });
    expect(stage.status).toBe(400);
    expect(stage.body.errcode).toBe('M_UNRECOGNIZED');
  });
});

describe.each(testDialects())('registration policy on %s', (dialect) => {
  let closed: TestServer;
  let tokens: TestServer;
  beforeAll(async () => {
    [closed, tokens] = await Promise.all([
      startHomeserver({ dialect, config: { enable_registration: false } }),
      startHomeserver({ dialect, config: { registration_requires_token: true, registration_tokens: ['from-config'] } }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([closed?.close(), tokens?.close()]);
  });

  it('answers 403 M_FORBIDDEN when registration is disabled', async () => {
    const res = await request(closed.baseUrl, 'POST', `${V3}/register`, { body: { username: 'nope', password: 'pw', auth: { type: 'm.login.dummy' } } });
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe('M_FORBIDDEN');
    const guest = await request(closed.baseUrl, 'POST', `${V3}/register?kind=guest`, { body: {} });
    expect(guest.status).toBe(403);
    const validity = await request(closed.baseUrl, 'GET', '/_matrix/client/v1/register/m.login.registration_token/validity?token=x');
    expect(validity.status).toBe(403);
    expect(validity.body.errcode).toBe('M_FORBIDDEN');
  });

  it('still lets the operator create accounts from the command line', async () => {
    const userId = await closed.hs.services.users.createAccountFromCli('operator', 'pw', true);
    expect(userId).toBe('@operator:localhost');
    expect(await closed.hs.services.users.isAdmin(userId)).toBe(true);
    await expect(closed.hs.services.users.createAccountFromCli('operator', 'pw', false)).rejects.toMatchObject({ errcode: 'M_USER_IN_USE' });
  });

  it('requires a registration token when configured', async () => {
    const first = await request(tokens.baseUrl, 'POST', `${V3}/register`, { body: { username: 'tok1', password: 'pw' } });
    expect(first.status).toBe(401);
    expect(first.body.flows).toEqual([{ stages: ['m.login.registration_token'] }]);
    const dummy = await request(tokens.baseUrl, 'POST', `${V3}/register`, {
      body: { username: 'tok1', password: 'pw', auth: { type: 'm.login.dummy', session: first.body.session } },
    });
    expect(dummy.status).toBe(400);

    const wrong = await request(tokens.baseUrl, 'POST', `${V3}/register`, {
      body: { username: 'tok1', password: 'pw', auth: { type: 'm.login.registration_token', token: 'wrong', session: first.body.session } },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.errcode).toBe('M_FORBIDDEN');
    expect(wrong.body.session).toBe(first.body.session);
    expect(wrong.body.flows).toBeDefined();

    const ok = await request(tokens.baseUrl, 'POST', `${V3}/register`, {
      body: { username: 'tok1', password: 'pw', auth: { type: 'm.login.registration_token', token: 'from-config', session: first.body.session } },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.user_id).toBe('@tok1:localhost');
  });

  it('counts uses of stored registration tokens', async () => {
    await tokens.hs.services.db.knex('registration_tokens').insert({ token: 'once', uses_allowed: 1, pending: 0, completed: 0 });
    const validity = (t: string) => request(tokens.baseUrl, 'GET', `/_matrix/client/v1/register/m.login.registration_token/validity?token=${t}`);
    expect((await validity('once')).body).toEqual({ valid: true });
    expect((await validity('from-config')).body).toEqual({ valid: true });
    expect((await validity('unknown')).body).toEqual({ valid: false });

    const ok = await request(tokens.baseUrl, 'POST', `${V3}/register`, {
      body: { username: 'tok2', password: 'pw', auth: { type: 'm.login.registration_token', token: 'once' } },
    });
    expect(ok.status).toBe(200);
    expect((await validity('once')).body).toEqual({ valid: false });
    const row = await tokens.hs.services.db.knex('registration_tokens').where({ token: 'once' }).first();
    expect(Number(row.completed)).toBe(1);
    expect(Number(row.pending)).toBe(0);

    const spent = await request(tokens.baseUrl, 'POST', `${V3}/register`, {
      body: { username: 'tok3', password: 'pw', auth: { type: 'm.login.registration_token', token: 'once' } },
    });
    expect(spent.status).toBe(401);
    expect(spent.body.errcode).toBe('M_FORBIDDEN');
  });
});

describe('registration rate limit (rc_registration)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver({
      config: { allow_guest_access: true, rc_enabled: true, rc_registration: { per_second: 0.001, burst_count: 2 } },
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  const uiaRegister = async (username: string) => {
    const probe = await request(server.baseUrl, 'POST', `${V3}/register`, { body: { username, password: 'pw' } });
    if (probe.status !== 401) return probe;
    return request(server.baseUrl, 'POST', `${V3}/register`, {
      body: { username, password: 'pw', auth: { type: 'm.login.dummy', session: probe.body.session } },
    });
  };

  it('spends the limit only on created accounts: UIA steps and availability probes are free', async () => {
    // What Element and Cinny do on page load, several times over.
    for (let i = 0; i < 5; i++) {
      expect((await request(server.baseUrl, 'POST', `${V3}/register`, { body: {} })).status).toBe(401);
      expect((await request(server.baseUrl, 'GET', `${V3}/register/available?username=probe${i}`)).status).toBe(200);
    }
    const first = await uiaRegister('rl_first');
    expect(first.status).toBe(200);
    const guest = await request(server.baseUrl, 'POST', `${V3}/register?kind=guest`, { body: {} });
    expect(guest.status).toBe(200);

    // Two accounts made: the third is refused and not created.
    const third = await uiaRegister('rl_third');
    expect(third.status).toBe(429);
    expect(third.body.errcode).toBe('M_LIMIT_EXCEEDED');
    expect(third.body.retry_after_ms).toBeGreaterThan(0);
    const available = await request(server.baseUrl, 'GET', `${V3}/register/available?username=rl_third`);
    expect(available.body).toEqual({ available: true });
  });
});
