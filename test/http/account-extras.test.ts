import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

describe.each(testDialects())('account extras on %s', (dialect) => {
  let server: TestServer;
  let turn: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const enc = encodeURIComponent;
  const api = (s: TestServer, user: TestUser | undefined, method: string, path: string, body?: unknown, skipSpecCheck = false) =>
    request(s.baseUrl, method, `/_matrix/client/v3${path}`, { ...(user ? { token: user.accessToken } : {}), ...(body !== undefined ? { body } : {}), skipSpecCheck });

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    turn = await startHomeserver({
      dialect,
      config: {
        turn_uris: ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349?transport=tcp'],
        turn_shared_secret: 's3cret',
        turn_user_lifetime: '2h',
        allow_guest_access: true,
        turn_allow_guests: false,
      },
    });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
    await turn?.close();
  });

  it('lists no third-party identifiers (matrix-js-sdk)', async () => {
    expect(await sdkClient(server.baseUrl, alice).getThreePids()).toEqual({ threepids: [] });
  });

  it('refuses to add third-party identifiers with the spec’s errcodes; removing an unknown one unbinds nothing', async () => {
    const email = await api(server, alice, 'POST', '/account/3pid/email/requestToken', { client_secret: 'c', email: 'a@example.org', send_attempt: 1 });
    expect([email.status, email.body.errcode]).toEqual([403, 'M_THREEPID_DENIED']);
    const msisdn = await api(server, alice, 'POST', '/account/3pid/msisdn/requestToken', { client_secret: 'c', country: 'GB', phone_number: '1', send_attempt: 1 });
    expect([msisdn.status, msisdn.body.errcode]).toEqual([403, 'M_THREEPID_DENIED']);
    const add = await api(server, alice, 'POST', '/account/3pid/add', { client_secret: 'c', sid: 's' });
    expect([add.status, add.body.errcode]).toEqual([400, 'M_THREEPID_AUTH_FAILED']);
    const legacy = await api(server, alice, 'POST', '/account/3pid', { three_pid_creds: { client_secret: 'c', sid: 's' } });
    expect([legacy.status, legacy.body.errcode]).toEqual([403, 'M_THREEPID_AUTH_FAILED']);
    // Binding goes to the identity server (test/http/third-party-invites.test.ts); nothing was bound, so nothing is unbound.
    const del = await api(server, alice, 'POST', '/account/3pid/delete', { medium: 'email', address: 'a@example.org' });
    expect([del.status, del.body]).toEqual([200, { id_server_unbind_result: 'no-support' }]);
    const unbind = await api(server, alice, 'POST', '/account/3pid/unbind', { medium: 'email', address: 'a@example.org' });
    expect([unbind.status, unbind.body]).toEqual([200, { id_server_unbind_result: 'no-support' }]);
  });

  it('gives no TURN server when none is configured', async () => {
    // Synapse's answer, which clients (matrix-js-sdk's checkTurnServers) read as "no TURN"; the spec's
    // schema would want the four fields, hence no spec check here.
    const res = await api(server, alice, 'GET', '/voip/turnServer', undefined, true);
    expect([res.status, res.body]).toEqual([200, {}]);
  });

  it('hands out time-limited TURN REST API credentials (matrix-js-sdk)', async () => {
    const carol = await registerUser(turn.baseUrl, 'carol');
    const before = Math.floor(Date.now() / 1000);
    const creds = await sdkClient(turn.baseUrl, carol).turnServer();
    expect(creds.uris).toEqual(['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349?transport=tcp']);
    expect(creds.ttl).toBe(7200);
    const [expiry, user] = [Number(creds.username.split(':')[0]), creds.username.slice(creds.username.indexOf(':') + 1)];
    expect(user).toBe(carol.userId);
    expect(expiry).toBeGreaterThanOrEqual(before + 7200);
    expect(expiry).toBeLessThanOrEqual(before + 7200 + 5);
    // What coturn checks with use-auth-secret / static-auth-secret.
    expect(creds.password).toBe(createHmac('sha1', 's3cret').update(creds.username).digest('base64'));

    const guest = await request(turn.baseUrl, 'POST', '/_matrix/client/v3/register?kind=guest', { body: {} });
    expect(guest.status).toBe(200);
    const refused = await request(turn.baseUrl, 'GET', '/_matrix/client/v3/voip/turnServer', { token: guest.body.access_token });
    expect([refused.status, refused.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
  });

  it('lists no third-party protocols until an appservice provides them', async () => {
    expect((await api(server, alice, 'GET', '/thirdparty/protocols')).body).toEqual({});
    expect((await api(server, alice, 'GET', '/thirdparty/protocol/irc')).status).toBe(404);
    // A search in a protocol nobody bridges finds nothing, as Synapse answers (Element's probes throw on 404).
    const unknownLocation = await api(server, alice, 'GET', '/thirdparty/location/irc?channel=x');
    const unknownUser = await api(server, alice, 'GET', '/thirdparty/user/irc?nickname=x');
    expect([unknownLocation.status, unknownLocation.body, unknownUser.status, unknownUser.body]).toEqual([200, [], 200, []]);
    expect((await api(server, alice, 'GET', '/thirdparty/location?alias=%23a:localhost')).body).toEqual([]);
    expect((await api(server, alice, 'GET', '/thirdparty/user?userid=@a:localhost')).body).toEqual([]);

    const irc = { user_fields: ['network', 'nickname'], location_fields: ['network', 'channel'], icon: 'mxc://localhost/irc', field_types: {}, instances: [] };
    server.hs.services.directory.thirdParty.setProvider({
      protocols: async () => ({ irc }),
      locations: async (protocol, fields) => (protocol === 'irc' ? [{ alias: `#irc_${fields.channel}:localhost`, protocol, fields }] : undefined),
      users: async () => undefined,
      locationsForAlias: async () => [],
      usersForUserId: async () => [],
    });
    try {
      expect((await api(server, alice, 'GET', '/thirdparty/protocols')).body).toEqual({ irc });
      expect((await api(server, alice, 'GET', '/thirdparty/protocol/irc')).body).toEqual(irc);
      const locations = await api(server, alice, 'GET', '/thirdparty/location/irc?channel=matrix');
      expect(locations.body).toEqual([{ alias: '#irc_matrix:localhost', protocol: 'irc', fields: { channel: 'matrix' } }]);
      expect((await api(server, alice, 'GET', '/thirdparty/location/xmpp?channel=matrix')).body).toEqual([]);
      expect((await api(server, alice, 'GET', '/thirdparty/user/irc?nickname=x')).body).toEqual([]);
    } finally {
      server.hs.services.directory.thirdParty.setProvider(undefined);
    }
  });

  it('issues OpenID tokens that another service can exchange for the user ID (matrix-js-sdk)', async () => {
    const token = await sdkClient(server.baseUrl, alice).getOpenIdToken();
    expect(token).toEqual({ access_token: expect.any(String), token_type: 'Bearer', matrix_server_name: 'localhost', expires_in: 3600 });
    const info = await request(server.baseUrl, 'GET', `/_matrix/federation/v1/openid/userinfo?access_token=${enc(token.access_token)}`);
    expect(info.status).toBe(200);
    expect(info.body).toEqual({ sub: alice.userId });

    const bad = await request(server.baseUrl, 'GET', '/_matrix/federation/v1/openid/userinfo?access_token=nope');
    expect([bad.status, bad.body.errcode]).toEqual([401, 'M_UNKNOWN_TOKEN']);
    // It is good for nothing else.
    const whoami = await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: token.access_token });
    expect(whoami.status).toBe(401);
    // Only for yourself.
    const other = await api(server, bob, 'POST', `/user/${enc(alice.userId)}/openid/request_token`, {});
    expect([other.status, other.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
  });
});
