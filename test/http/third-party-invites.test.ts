// Third-party (3PID) invites and identity-server binding against a real identity server on loopback HTTPS
// (test/helpers/identityServer.ts): invite by email, the identity server's onbind, /join with
// third_party_signed, bad signatures and revoked keys, bind/unbind/delete/deactivate, hostile input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signJson } from '../../src/crypto/signing.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { ID_ACCESS_TOKEN, TestIdentityServer } from '../helpers/identityServer.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const enc = encodeURIComponent;
// SyTest-like set-up: loopback allowed for outbound requests, the identity server's certificate not checked.
const CONFIG = { ip_range_whitelist: ['127.0.0.0/8'], use_insecure_ssl_client_just_for_testing_do_not_use: true };

describe.each(testDialects())('third-party invites and 3PID binding on %s', (dialect) => {
  let server: TestServer;
  let is: TestIdentityServer;
  let n = 0;
  const api = (user: TestUser | undefined, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { ...(user ? { token: user.accessToken } : {}), ...(body !== undefined ? { body } : {}) });
  const user = () => registerUser(server.baseUrl, `u${n++}`);
  const room = async (owner: TestUser, extra: Record<string, unknown> = {}) => {
    const res = await api(owner, 'POST', '/createRoom', { preset: 'private_chat', ...extra });
    expect(res.status).toBe(200);
    return res.body.room_id as string;
  };
  const invite3pid = (inviter: TestUser, roomId: string, address: string, idServer = is.name) =>
    api(inviter, 'POST', `/rooms/${enc(roomId)}/invite`, { id_server: idServer, id_access_token: ID_ACCESS_TOKEN, medium: 'email', address });
  const member = async (viewer: TestUser, roomId: string, target: string) => {
    const res = await api(viewer, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(target)}`);
    return res.status === 200 ? res.body : undefined;
  };

  beforeAll(async () => {
    is = await new TestIdentityServer().start();
    server = await startHomeserver({ dialect, config: CONFIG });
  });
  afterAll(async () => {
    await server?.close();
    await is?.close();
  });

  it('invites the owner of a bound 3PID directly, after a hashed lookup with the access token', async () => {
    const [alice, bob] = [await user(), await user()];
    is.bindings.set('email\0bound@example.org', bob.userId);
    const roomId = await room(alice);
    expect((await invite3pid(alice, roomId, 'bound@example.org')).status).toBe(200);
    expect((await member(alice, roomId, bob.userId))?.membership).toBe('invite');
    const lookup = is.seen.filter((r) => r.path === '/_matrix/identity/v2/lookup').at(-1)!;
    expect([lookup.body.algorithm, lookup.authorization]).toEqual(['sha256', `Bearer ${ID_ACCESS_TOKEN}`]);
  });

  it('invites bound 3PIDs named in createRoom’s invite_3pid', async () => {
    const [alice, bob] = [await user(), await user()];
    is.bindings.set('email\0create@example.org', bob.userId);
    const roomId = await room(alice, { invite_3pid: [{ id_server: is.name, id_access_token: ID_ACCESS_TOKEN, medium: 'email', address: 'create@example.org' }] });
    expect((await member(alice, roomId, bob.userId))?.membership).toBe('invite');
  });

  it('stores an unbound 3PID’s invite; onbind turns it into an invite the invitee can accept', async () => {
    const [alice, bob] = [await user(), await user()];
    const roomId = await room(alice);
    expect((await invite3pid(alice, roomId, 'unbound@example.org')).status).toBe(200);
    const stored = is.invites.find((i) => i.address === 'unbound@example.org')!;
    expect([stored.room_id, stored.sender]).toEqual([roomId, alice.userId]);
    const tpi = await api(alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.third_party_invite/${enc(stored.token)}`);
    expect(tpi.body).toMatchObject({ display_name: 'Bob', public_key: is.key.publicKey });
    expect(tpi.body.public_keys).toHaveLength(2);

    const bound = await is.bindAndNotify(server.baseUrl, 'email', 'unbound@example.org', bob.userId);
    expect(bound.status).toBe(200);
    const m = await member(alice, roomId, bob.userId);
    expect([m?.membership, m?.third_party_invite?.display_name]).toEqual(['invite', 'Bob']);
    const sync = await api(bob, 'GET', '/sync?timeout=0');
    expect(Object.keys(sync.body.rooms?.invite ?? {})).toContain(roomId);
    expect((await api(bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect((await member(alice, roomId, bob.userId))?.membership).toBe('join');
  });

  it('redeems an invite whose inviter has left since', async () => {
    const [alice, carol, bob] = [await user(), await user(), await user()];
    const roomId = await room(alice, { invite: [carol.userId] });
    await api(carol, 'POST', `/join/${enc(roomId)}`, {});
    await invite3pid(alice, roomId, 'left@example.org');
    await api(alice, 'POST', `/rooms/${enc(roomId)}/leave`, {});
    expect((await is.bindAndNotify(server.baseUrl, 'email', 'left@example.org', bob.userId)).status).toBe(200);
    expect((await api(bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect((await member(carol, roomId, bob.userId))?.membership).toBe('join');
  });

  it('joins with third_party_signed (signed with the ephemeral key)', async () => {
    const [alice, bob] = [await user(), await user()];
    const roomId = await room(alice);
    await invite3pid(alice, roomId, 'join@example.org');
    const stored = is.invites.find((i) => i.address === 'join@example.org')!;
    const signed = signJson({ mxid: bob.userId, sender: alice.userId, token: stored.token }, is.name, is.ephemeral);
    const res = await api(bob, 'POST', `/join/${enc(roomId)}`, { third_party_signed: signed });
    expect(res.status).toBe(200);
    expect((await member(alice, roomId, bob.userId))?.membership).toBe('join');
  });

  it('refuses a signature by other keys, revoked keys and a tampered signed block', async () => {
    const [alice, bob] = [await user(), await user()];
    const roomId = await room(alice);
    await invite3pid(alice, roomId, 'wrong@example.org');
    await invite3pid(alice, roomId, 'revoked@example.org');
    const oldKey = is.key;
    // Signed by keys the invite does not list.
    is.rotateKeys();
    const wrong = await is.bindAndNotify(server.baseUrl, 'email', 'wrong@example.org', bob.userId);
    expect([wrong.status, wrong.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    // Keys listed, but the identity server no longer vouches for them.
    is.key = oldKey;
    const revoked = await is.bindAndNotify(server.baseUrl, 'email', 'revoked@example.org', bob.userId, () => is.rotateKeys());
    expect([revoked.status, revoked.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    // A signed block for someone else.
    const stored = is.invites.find((i) => i.address === 'wrong@example.org')!;
    const forged = { ...is.signedFor(stored, alice.userId), mxid: bob.userId, sender: alice.userId };
    expect((await api(bob, 'POST', `/join/${enc(roomId)}`, { third_party_signed: forged })).status).toBe(403);
    expect(await member(alice, roomId, bob.userId)).toBeUndefined();
    expect((await api(bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(403);
  });

  it('binds, unbinds (signed as the homeserver), deletes and unbinds at deactivation', async () => {
    const bob = await user();
    const bind = (address: string) =>
      request(server.baseUrl, 'POST', '/_matrix/client/unstable/account/3pid/bind', {
        token: bob.accessToken,
        body: { id_server: is.name, id_access_token: ID_ACCESS_TOKEN, sid: is.validate('email', address), client_secret: 'Secret.=_-' },
        skipSpecCheck: true,
      });
    expect((await bind('b1@example.org')).status).toBe(200);
    expect(is.bindings.get('email\0b1@example.org')).toBe(bob.userId);
    const unbind = await api(bob, 'POST', '/account/3pid/unbind', { medium: 'email', address: 'b1@example.org' });
    expect([unbind.status, unbind.body]).toEqual([200, { id_server_unbind_result: 'success' }]);
    expect(is.bindings.has('email\0b1@example.org')).toBe(false);
    expect(is.seen.filter((r) => r.path.endsWith('/3pid/unbind')).at(-1)!.authorization).toMatch(new RegExp(`^X-Matrix origin="${server.serverName}",destination="${is.name}"`));

    // Bound out of band: /delete with id_server still removes it.
    is.bindings.set('email\0oob@example.org', bob.userId);
    const del = await api(bob, 'POST', '/account/3pid/delete', { medium: 'email', address: 'oob@example.org', id_server: is.name });
    expect([del.status, del.body]).toEqual([200, { id_server_unbind_result: 'success' }]);
    expect(is.bindings.has('email\0oob@example.org')).toBe(false);
    // Nothing known about it: nothing to unbind.
    const none = await api(bob, 'POST', '/account/3pid/unbind', { medium: 'email', address: 'never@example.org' });
    expect([none.status, none.body]).toEqual([200, { id_server_unbind_result: 'no-support' }]);

    expect((await bind('b2@example.org')).status).toBe(200);
    const first = await api(bob, 'POST', '/account/deactivate', {});
    const deact = await api(bob, 'POST', '/account/deactivate', { auth: { type: 'm.login.password', session: first.body.session, identifier: { type: 'm.id.user', user: bob.userId }, password: `pw-${bob.userId.slice(1).split(':')[0]}-secret` } });
    expect([deact.status, deact.body]).toEqual([200, { id_server_unbind_result: 'success' }]);
    expect(is.bindings.has('email\0b2@example.org')).toBe(false);
  });

  it('answers hostile or incomplete input with the spec’s errors, never a 500', async () => {
    const alice = await user();
    const roomId = await room(alice);
    const post = (body: unknown) => api(alice, 'POST', `/rooms/${enc(roomId)}/invite`, body);
    expect((await post({ id_server: 'https://evil.example/x', id_access_token: 't', medium: 'email', address: 'a@b' })).body.errcode).toBe('M_INVALID_PARAM');
    expect((await post({ id_server: is.name, medium: 'email', address: 'a@b' })).body.errcode).toBe('M_MISSING_PARAM');
    expect((await post({ id_server: is.name, id_access_token: 't', medium: 'email', address: 'x'.repeat(600) })).status).toBe(400);
    expect((await post({})).body.errcode).toBe('M_MISSING_PARAM');
    const createBad = await api(alice, 'POST', '/createRoom', { invite_3pid: [{ id_server: is.name, medium: 'email' }] });
    expect(createBad.status).toBe(400);
    // Not in the room: refused before the identity server hears of it.
    const outsider = await user();
    const before = is.invites.length;
    expect((await invite3pid(outsider, roomId, 'x@example.org')).status).toBe(403);
    expect(is.invites.length).toBe(before);

    const onbind = (body: unknown) => request(server.baseUrl, 'POST', '/_matrix/federation/v1/3pid/onbind', { body, skipSpecCheck: true });
    expect((await onbind({ mxid: 'nope', invites: 'x' })).status).toBe(400);
    expect((await onbind({ medium: 'email', address: 'a@b', mxid: alice.userId, invites: [{ room_id: roomId, sender: alice.userId, mxid: alice.userId, signed: { mxid: alice.userId, token: 'no-such-token', signatures: {} } }] })).status).toBe(403);
    const bind = await api(alice, 'POST', '/account/3pid/bind', { id_server: '__proto__', id_access_token: 't', sid: 's', client_secret: 'not allowed!' });
    expect(bind.status).toBe(400);
    const join = await api(alice, 'POST', `/join/${enc(roomId)}`, { third_party_signed: { mxid: 1.5, token: {}, signatures: [] } });
    expect(join.status).toBe(400);
  });

  it('answers 502 when the identity server is unreachable or its address is not allowed', async () => {
    const alice = await user();
    const roomId = await room(alice);
    const gone = await new TestIdentityServer().start();
    const name = gone.name;
    await gone.close();
    const res = await invite3pid(alice, roomId, 'x@example.org', name);
    expect([res.status, res.body.errcode]).toEqual([502, 'M_UNKNOWN']);

    // Without loopback in ip_range_whitelist, the address is refused before any connection is made.
    const strict = await startHomeserver({ dialect, config: { ip_range_whitelist: [], use_insecure_ssl_client_just_for_testing_do_not_use: true } });
    try {
      const carol = await registerUser(strict.baseUrl, 'carol');
      const r = (await request(strict.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: carol.accessToken, body: {} })).body.room_id;
      const before = is.seen.length;
      const blocked = await request(strict.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(r)}/invite`, {
        token: carol.accessToken,
        body: { id_server: is.name, id_access_token: ID_ACCESS_TOKEN, medium: 'email', address: 'x@example.org' },
      });
      expect([blocked.status, blocked.body.errcode]).toEqual([502, 'M_UNKNOWN']);
      expect(is.seen.length).toBe(before);
    } finally {
      await strict.close();
    }
  });

  it('checks the identity server’s certificate unless told not to', async () => {
    const checked = await startHomeserver({ dialect, config: { ip_range_whitelist: ['127.0.0.0/8'] } });
    try {
      const carol = await registerUser(checked.baseUrl, 'carol');
      const res = await request(checked.baseUrl, 'POST', '/_matrix/client/v3/account/3pid/bind', {
        token: carol.accessToken,
        body: { id_server: is.name, id_access_token: ID_ACCESS_TOKEN, sid: is.validate('email', 'tls@example.org'), client_secret: 'abc' },
        skipSpecCheck: true,
      });
      expect(res.status).toBe(502);
      expect(is.bindings.has('email\0tls@example.org')).toBe(false);
    } finally {
      await checked.close();
    }
  });
});
