import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('account data on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown, prefix = '/_matrix/client/v3') =>
    request(server.baseUrl, method, `${prefix}${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const sync = async (user: TestUser, qs = ''): Promise<Json> => {
    const res = await api(user, 'GET', `/sync${qs}`);
    expect(res.status).toBe(200);
    return res.body;
  };

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('stores global account data, serves it back and shows it in sync', async () => {
    const path = `/user/${enc(alice.userId)}/account_data/org.example.settings`;
    expect((await api(alice, 'GET', path)).status).toBe(404);
    expect((await api(alice, 'GET', path)).body.errcode).toBe('M_NOT_FOUND');
    const base = await sync(alice);
    expect((await api(alice, 'PUT', path, { theme: 'dark' })).status).toBe(200);
    expect((await api(alice, 'GET', path)).body).toEqual({ theme: 'dark' });
    expect((await api(alice, 'GET', path, undefined, '/_matrix/client/r0')).body).toEqual({ theme: 'dark' });

    const initial = await sync(alice);
    expect(initial.account_data.events).toContainEqual({ type: 'org.example.settings', content: { theme: 'dark' } });

    const inc = await sync(alice, `?since=${enc(base.next_batch)}`);
    expect(inc.account_data.events).toEqual([{ type: 'org.example.settings', content: { theme: 'dark' } }]);
    // A change gets a new position, so it shows up again; an unchanged entry does not.
    expect((await api(alice, 'PUT', path, { theme: 'light' })).status).toBe(200);
    const again = await sync(alice, `?since=${enc(inc.next_batch)}`);
    expect(again.account_data.events).toEqual([{ type: 'org.example.settings', content: { theme: 'light' } }]);
    const idle = await sync(alice, `?since=${enc(again.next_batch)}`);
    expect(idle.account_data.events).toEqual([]);
  });

  it('stores room account data and shows it inside the joined room', async () => {
    const { body } = await api(alice, 'POST', '/createRoom', {});
    const roomId = body.room_id;
    const path = `/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/m.tag`;
    expect((await api(alice, 'GET', path)).status).toBe(404);
    const base = await sync(alice);
    expect((await api(alice, 'PUT', path, { tags: { 'm.favourite': { order: 0.5 } } })).status).toBe(200);
    expect((await api(alice, 'GET', path)).body).toEqual({ tags: { 'm.favourite': { order: 0.5 } } });
    // Global and room account data are separate.
    expect((await api(alice, 'GET', `/user/${enc(alice.userId)}/account_data/m.tag`)).status).toBe(404);

    const inc = await sync(alice, `?since=${enc(base.next_batch)}`);
    expect(inc.rooms.join[roomId].account_data.events).toEqual([{ type: 'm.tag', content: { tags: { 'm.favourite': { order: 0.5 } } } }]);
    expect(inc.rooms.join[roomId].timeline.events).toEqual([]);
    expect(inc.account_data.events).toEqual([]);
    const initial = await sync(alice);
    expect(initial.rooms.join[roomId].account_data.events).toContainEqual({ type: 'm.tag', content: { tags: { 'm.favourite': { order: 0.5 } } } });
  });

  it('wakes a long-polling sync when account data changes', async () => {
    const base = await sync(alice);
    const pending = sync(alice, `?since=${enc(base.next_batch)}&timeout=20000`);
    await new Promise((r) => setTimeout(r, 100));
    await api(alice, 'PUT', `/user/${enc(alice.userId)}/account_data/org.example.wake`, { n: 1 });
    const res = await pending;
    expect(res.account_data.events).toEqual([{ type: 'org.example.wake', content: { n: 1 } }]);
  });

  it('applies the account_data filter', async () => {
    await api(alice, 'PUT', `/user/${enc(alice.userId)}/account_data/org.example.keep`, { k: 1 });
    await api(alice, 'PUT', `/user/${enc(alice.userId)}/account_data/org.example.drop`, { d: 1 });
    const res = await sync(alice, `?filter=${enc(JSON.stringify({ account_data: { types: ['org.example.keep'] } }))}`);
    expect(res.account_data.events).toEqual([{ type: 'org.example.keep', content: { k: 1 } }]);
  });

  it('refuses other users with 403 M_FORBIDDEN', async () => {
    for (const path of [`/user/${enc(alice.userId)}/account_data/x.y`, `/user/${enc(alice.userId)}/rooms/${enc('!a:localhost')}/account_data/x.y`]) {
      const put = await api(bob, 'PUT', path, { a: 1 });
      expect(put.status).toBe(403);
      expect(put.body.errcode).toBe('M_FORBIDDEN');
      expect((await api(bob, 'GET', path)).status).toBe(403);
    }
  });

  it('refuses server-managed types with 405 M_BAD_JSON', async () => {
    for (const type of ['m.fully_read', 'm.push_rules']) {
      const res = await api(alice, 'PUT', `/user/${enc(alice.userId)}/account_data/${type}`, { event_id: '$x' });
      expect(res.status).toBe(405);
      expect(res.body.errcode).toBe('M_BAD_JSON');
    }
    const room = await api(alice, 'PUT', `/user/${enc(alice.userId)}/rooms/${enc('!a:localhost')}/account_data/m.fully_read`, { event_id: '$x' });
    expect(room.status).toBe(405);
    expect(room.body.errcode).toBe('M_BAD_JSON');
  });

  it('rejects bodies that are not JSON objects and invalid room ids', async () => {
    const notJson = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/user/${enc(alice.userId)}/account_data/x.y`, {
      token: alice.accessToken,
      rawBody: '[1,2]',
      headers: { 'content-type': 'application/json' },
    });
    expect(notJson.status).toBe(400);
    expect(['M_BAD_JSON', 'M_NOT_JSON']).toContain(notJson.body.errcode);
    const badRoom = await api(alice, 'PUT', `/user/${enc(alice.userId)}/rooms/not-a-room/account_data/x.y`, { a: 1 });
    expect(badRoom.status).toBe(400);
    expect(badRoom.body.errcode).toBe('M_INVALID_PARAM');
  });
});
