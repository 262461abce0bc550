import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('user directory on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  let eve: TestUser;
  const api = (server: TestServer, user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const search = async (server: TestServer, user: TestUser, term: string, limit?: number): Promise<Json> => {
    const res = await api(server, user, 'POST', '/user_directory/search', { search_term: term, ...(limit !== undefined ? { limit } : {}) });
    expect(res.status).toBe(200);
    return res.body;
  };
  const ids = (body: Json) => body.results.map((r: Json) => r.user_id);
  const setName = (server: TestServer, user: TestUser, name: string) =>
    api(server, user, 'PUT', `/profile/${encodeURIComponent(user.userId)}/displayname`, { displayname: name });

  /** alice and bob share a private room; carol sits in a public room; dave is alone; eve was deactivated. */
  async function populate(s: TestServer) {
    const [a, b, c, d, e] = await Promise.all(['alice', 'bob', 'carol', 'dave', 'eve'].map((n) => registerUser(s.baseUrl, n)));
    await setName(s, a!, 'Alice Liddell');
    await setName(s, b!, 'Bobby Tables');
    await api(s, b!, 'PUT', `/profile/${encodeURIComponent(b!.userId)}/avatar_url`, { avatar_url: 'mxc://localhost/bobby' });
    await setName(s, c!, 'Caroline Tables');
    await setName(s, d!, 'Dave Tables');
    await setName(s, e!, 'Eve Tables');
    const shared = (await api(s, a!, 'POST', '/createRoom', { invite: [b!.userId, e!.userId] })).body.room_id;
    await api(s, b!, 'POST', `/join/${encodeURIComponent(shared)}`, {});
    await api(s, e!, 'POST', `/join/${encodeURIComponent(shared)}`, {});
    await api(s, c!, 'POST', '/createRoom', { preset: 'public_chat' });
    await api(s, d!, 'POST', '/createRoom', {});
    const deactivated = await api(s, e!, 'POST', '/account/deactivate', {
      auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: e!.userId }, password: e!.password },
    });
    expect(deactivated.status).toBe(200);
    return [a!, b!, c!, d!, e!] as const;
  }

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    [alice, bob, carol, dave, eve] = await populate(server);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('finds a user who shares a room by display name, with their profile (matrix-js-sdk)', async () => {
    const client = sdkClient(server.baseUrl, alice);
    const res = await client.searchUserDirectory({ term: 'bobby' });
    expect(res).toEqual({ results: [{ user_id: bob.userId, display_name: 'Bobby Tables', avatar_url: 'mxc://localhost/bobby' }], limited: false });
  });

  it('matches the user ID and display name without regard to case', async () => {
    expect(ids(await search(server, alice, 'BOB'))).toEqual([bob.userId]);
    expect(ids(await search(server, alice, `@bob:localhost`))).toEqual([bob.userId]);
    expect(ids(await search(server, alice, 'bOBBY tAB'))).toEqual([bob.userId]);
    expect(ids(await search(server, alice, 'nobody-by-this-name'))).toEqual([]);
  });

  it('includes users in public rooms but not strangers or deactivated users', async () => {
    // "Tables": bob (shared room, ranked first), carol (public room); not dave (no shared or public room), not eve.
    const res = await search(server, alice, 'tables');
    expect(ids(res)).toEqual([bob.userId, carol.userId]);
    expect(ids(await search(server, alice, 'dave'))).toEqual([]);
    expect(ids(await search(server, alice, 'eve'))).not.toContain(eve.userId);
    // Dave sees carol (public room) but not bob (private room he is not in).
    expect(ids(await search(server, dave, 'tables'))).toEqual([carol.userId]);
  });

  it('honours the limit and says when results were cut', async () => {
    const res = await search(server, alice, 'tables', 1);
    expect(res.results).toHaveLength(1);
    expect(res.limited).toBe(true);
    expect((await search(server, alice, 'tables', 10)).limited).toBe(false);
  });

  it('searches every local user with user_directory.search_all_users', async () => {
    const all = await startHomeserver({ dialect, config: { user_directory: { search_all_users: true } } });
    try {
      const [a, , , d] = await populate(all);
      expect(ids(await search(all, a, 'tables'))).toEqual(expect.arrayContaining([`@bob:localhost`, '@carol:localhost', d.userId]));
      expect(ids(await search(all, a, 'tables'))).not.toContain('@eve:localhost');
    } finally {
      await all.close();
    }
  });

  it('returns nothing when the directory is disabled', async () => {
    const off = await startHomeserver({ dialect, config: { user_directory: { enabled: false } } });
    try {
      const [a] = await populate(off);
      expect(await search(off, a, 'bob')).toEqual({ results: [], limited: false });
    } finally {
      await off.close();
    }
  });
});
