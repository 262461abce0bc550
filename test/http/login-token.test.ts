import { createClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, specCheckedFetch, type TestUser } from '../helpers/users.js';

describe.each(testDialects())('login tokens on %s', (dialect) => {
  let server: TestServer;
  let disabled: TestServer;
  let alice: TestUser;
  const getToken = (s: TestServer, user: TestUser, auth?: unknown) =>
    request(s.baseUrl, 'POST', '/_matrix/client/v1/login/get_token', { token: user.accessToken, body: auth === undefined ? {} : { auth } });
  const passwordAuth = (user: TestUser, session: string, password = user.password) => ({
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user: user.userId },
    password,
    session,
  });
  /** The two UIA rounds: 401 with the flows, then the password. */
  const issue = async (s: TestServer, user: TestUser): Promise<string> => {
    const first = await getToken(s, user);
    expect(first.status).toBe(401);
    const second = await getToken(s, user, passwordAuth(user, first.body.session));
    expect(second.status).toBe(200);
    return second.body.login_token;
  };
  const anonymous = (s: TestServer) => createClient({ baseUrl: s.baseUrl, fetchFn: specCheckedFetch });
  const loginWith = (s: TestServer, token: string) => request(s.baseUrl, 'POST', '/_matrix/client/v3/login', { body: { type: 'm.login.token', token } });

  beforeAll(async () => {
    server = await startHomeserver({ dialect, config: { login_via_existing_session: { enabled: true } } });
    disabled = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
  });
  afterAll(async () => {
    await server?.close();
    await disabled?.close();
  });

  it('offers m.login.token in GET /login (matrix-js-sdk)', async () => {
    const { flows } = await anonymous(server).loginFlows();
    expect(flows.map((f) => f.type)).toEqual(expect.arrayContaining(['m.login.password', 'm.login.token']));
  });

  it('has no get_token endpoint unless login_via_existing_session is enabled', async () => {
    const bob = await registerUser(disabled.baseUrl, 'bob');
    const res = await getToken(disabled, bob);
    expect([res.status, res.body.errcode]).toEqual([404, 'M_UNRECOGNIZED']);
  });

  it('asks for the password, then issues a token another client logs in with (matrix-js-sdk)', async () => {
    const first = await getToken(server, alice);
    expect(first.status).toBe(401);
    expect(first.body.flows).toEqual([{ stages: ['m.login.password'] }]);
    const wrong = await getToken(server, alice, passwordAuth(alice, first.body.session, 'not the password'));
    expect([wrong.status, wrong.body.errcode]).toEqual([401, 'M_FORBIDDEN']);
    const ok = await getToken(server, alice, passwordAuth(alice, first.body.session));
    expect(ok.status).toBe(200);
    expect(ok.body.expires_in_ms).toBe(300_000); // the default five minutes

    const login = await anonymous(server).loginWithToken(ok.body.login_token);
    expect(login.user_id).toBe(alice.userId);
    expect(login.device_id).not.toBe(alice.deviceId);
    const whoami = await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: login.access_token });
    expect(whoami.body).toMatchObject({ user_id: alice.userId, device_id: login.device_id });
  });

  it('accepts a token only once', async () => {
    const token = await issue(server, alice);
    expect((await loginWith(server, token)).status).toBe(200);
    const again = await loginWith(server, token);
    expect([again.status, again.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    const bogus = await loginWith(server, 'skl_not-a-token');
    expect([bogus.status, bogus.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
  });

  it('refuses an expired token', async () => {
    const short = await startHomeserver({ dialect, config: { login_via_existing_session: { enabled: true, require_ui_auth: false, token_timeout: 300 } } });
    try {
      const dave = await registerUser(short.baseUrl, 'dave');
      const issued = await getToken(short, dave);
      expect(issued.body.expires_in_ms).toBe(300);
      await new Promise((r) => setTimeout(r, 400));
      const res = await loginWith(short, issued.body.login_token);
      expect([res.status, res.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    } finally {
      await short.close();
    }
  });

  it('issues without re-authentication when require_ui_auth is off', async () => {
    const relaxed = await startHomeserver({ dialect, config: { login_via_existing_session: { enabled: true, require_ui_auth: false } } });
    try {
      const carol = await registerUser(relaxed.baseUrl, 'carol');
      const res = await getToken(relaxed, carol);
      expect(res.status).toBe(200);
      expect(res.body.expires_in_ms).toBe(300_000);
      expect((await loginWith(relaxed, res.body.login_token)).body.user_id).toBe(carol.userId);
    } finally {
      await relaxed.close();
    }
  });
});
