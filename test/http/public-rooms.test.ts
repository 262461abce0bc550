import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('published room directory on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  const rooms: Record<string, string> = {};
  const api = (user: TestUser | undefined, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { ...(user ? { token: user.accessToken } : {}), ...(body !== undefined ? { body } : {}) });
  const createRoom = async (user: TestUser, body: Record<string, unknown>): Promise<string> => {
    const res = await api(user, 'POST', '/createRoom', body);
    expect(res.status).toBe(200);
    return res.body.room_id;
  };
  const join = async (user: TestUser, roomId: string) => expect((await api(user, 'POST', `/join/${encodeURIComponent(roomId)}`, {})).status).toBe(200);

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    [alice, bob, carol] = (await Promise.all(['alice', 'bob', 'carol'].map((n) => registerUser(server.baseUrl, n)))) as [TestUser, TestUser, TestUser];
    rooms.cheese = await createRoom(alice, {
      visibility: 'public',
      name: 'Cheese lovers',
      topic: 'Tasty tasty cheese',
      room_alias_name: 'cheese',
      initial_state: [
        { type: 'm.room.avatar', state_key: '', content: { url: 'mxc://localhost/cheese' } },
        { type: 'm.room.guest_access', state_key: '', content: { guest_access: 'can_join' } },
        { type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } },
      ],
    });
    rooms.space = await createRoom(alice, { visibility: 'public', name: 'Dairy space', creation_content: { type: 'm.space' } });
    rooms.wine = await createRoom(bob, { visibility: 'public', name: 'Wine', topic: 'Goes with cheddar' });
    rooms.private = await createRoom(alice, { name: 'Secret cheese' });
    // Published but invite-only and not world-readable: not listed.
    rooms.hidden = await createRoom(alice, { visibility: 'public', preset: 'private_chat', name: 'Invite-only cheese' });
    // Member counts: wine 3, cheese 2, space 1.
    await join(alice, rooms.wine);
    await join(carol, rooms.wine);
    await join(bob, rooms.cheese);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('lists published rooms with their summary, most members first (matrix-js-sdk)', async () => {
    const client = sdkClient(server.baseUrl, carol);
    const res = await client.publicRooms();
    expect(res.chunk.map((r) => r.room_id)).toEqual([rooms.wine, rooms.cheese, rooms.space]);
    expect(res.total_room_count_estimate).toBe(3);
    expect(res.next_batch).toBeUndefined();
    expect(res.chunk[1]).toEqual({
      room_id: rooms.cheese,
      name: 'Cheese lovers',
      topic: 'Tasty tasty cheese',
      canonical_alias: '#cheese:localhost',
      avatar_url: 'mxc://localhost/cheese',
      num_joined_members: 2,
      world_readable: true,
      guest_can_join: true,
      join_rule: 'public',
    });
    expect(res.chunk[0]).toMatchObject({ name: 'Wine', num_joined_members: 3, world_readable: false, guest_can_join: false, join_rule: 'public' });
    expect(res.chunk[2]).toMatchObject({ name: 'Dairy space', room_type: 'm.space' });
  });

  it('shows a room once it is published and drops it when unpublished', async () => {
    const path = `/directory/list/room/${encodeURIComponent(rooms.private!)}`;
    // A private_chat room has the invite join rule: published, it still is not listed until it is public.
    await api(alice, 'PUT', `/rooms/${encodeURIComponent(rooms.private!)}/state/m.room.join_rules`, { join_rule: 'public' });
    expect((await api(alice, 'PUT', path, { visibility: 'public' })).status).toBe(200);
    expect((await api(carol, 'GET', '/publicRooms')).body.chunk.map((r: Json) => r.room_id)).toContain(rooms.private);
    expect((await api(alice, 'PUT', path, { visibility: 'private' })).status).toBe(200);
    expect((await api(carol, 'GET', '/publicRooms')).body.chunk.map((r: Json) => r.room_id)).not.toContain(rooms.private);
  });

  it('pages forwards and backwards with next_batch and prev_batch', async () => {
    const first = await api(carol, 'GET', '/publicRooms?limit=2');
    expect(first.status).toBe(200);
    expect(first.body.chunk.map((r: Json) => r.room_id)).toEqual([rooms.wine, rooms.cheese]);
    expect(first.body.prev_batch).toBeUndefined();
    expect(first.body.total_room_count_estimate).toBe(3);
    const second = await api(carol, 'GET', `/publicRooms?limit=2&since=${encodeURIComponent(first.body.next_batch)}`);
    expect(second.body.chunk.map((r: Json) => r.room_id)).toEqual([rooms.space]);
    expect(second.body.next_batch).toBeUndefined();
    const back = await api(carol, 'POST', '/publicRooms', { limit: 2, since: second.body.prev_batch });
    expect(back.body.chunk.map((r: Json) => r.room_id)).toEqual([rooms.wine, rooms.cheese]);
    expect(back.body.prev_batch).toBeUndefined();

    const client = sdkClient(server.baseUrl, carol);
    const one = await client.publicRooms({ limit: 1 });
    const two = await client.publicRooms({ limit: 1, since: one.next_batch });
    expect([...one.chunk, ...two.chunk].map((r) => r.room_id)).toEqual([rooms.wine, rooms.cheese]);
    expect((await api(carol, 'GET', '/publicRooms?since=garbage')).body.errcode).toBe('M_INVALID_PARAM');
  });

  it('filters by a search term over name, topic and alias, and by room type', async () => {
    const search = async (filter: Json) => (await api(carol, 'POST', '/publicRooms', { filter })).body.chunk.map((r: Json) => r.room_id);
    expect(await search({ generic_search_term: 'CHEDDAR' })).toEqual([rooms.wine]); // topic, any case
    expect(await search({ generic_search_term: 'cheese' })).toEqual([rooms.cheese]); // name, topic, alias
    expect(await search({ generic_search_term: '#cheese:localhost' })).toEqual([rooms.cheese]);
    expect(await search({ generic_search_term: 'nothing like this' })).toEqual([]);
    expect(await search({ room_types: ['m.space'] })).toEqual([rooms.space]);
    expect(await search({ room_types: [null] })).toEqual([rooms.wine, rooms.cheese]);
    expect(await search({ room_types: [null, 'm.space'] })).toEqual([rooms.wine, rooms.cheese, rooms.space]);

    const client = sdkClient(server.baseUrl, carol);
    const res = await client.publicRooms({ filter: { generic_search_term: 'dairy' } });
    expect(res.chunk.map((r) => r.room_id)).toEqual([rooms.space]);
    expect(res.total_room_count_estimate).toBe(1);
  });

  it('needs an access token unless the server allows browsing without one', async () => {
    const anon = await api(undefined, 'GET', '/publicRooms');
    expect(anon.status).toBe(401);
    expect(anon.body.errcode).toBe('M_MISSING_TOKEN');
    expect((await api(undefined, 'POST', '/publicRooms', {})).status).toBe(401);

    const open = await startHomeserver({ dialect, config: { allow_public_rooms_without_auth: true } });
    try {
      const dave = await registerUser(open.baseUrl, 'dave');
      await request(open.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: dave.accessToken, body: { visibility: 'public', name: 'Open' } });
      const res = await request(open.baseUrl, 'GET', '/_matrix/client/v3/publicRooms');
      expect(res.status).toBe(200);
      expect(res.body.chunk.map((r: Json) => r.name)).toEqual(['Open']);
    } finally {
      await open.close();
    }
  });

  it('answers for its own server name and refuses other servers', async () => {
    const own = await api(carol, 'GET', '/publicRooms?server=localhost');
    expect(own.status).toBe(200);
    expect(own.body.chunk).toHaveLength(3);
    const other = await api(carol, 'POST', '/publicRooms?server=elsewhere.example', {});
    expect(other.status).toBe(404);
    expect(other.body.errcode).toBe('M_NOT_FOUND');
  });
});
