import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../../helpers/homeserver.js';
import { request } from '../../helpers/http.js';
import type { TestUser } from '../../helpers/users.js';
import { admin, enc, expectAdminOnly, makeAdmin, registerUser } from './helpers.js';

async function createRoom(server: TestServer, user: TestUser, body: Record<string, unknown>): Promise<string> {
  const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body });
  if (res.status !== 200) throw new Error(`createRoom: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.room_id as string;
}

async function join(server: TestServer, user: TestUser, roomId: string) {
  return request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: user.accessToken, body: {} });
}

async function joinedRooms(server: TestServer, user: TestUser): Promise<string[]> {
  return (await request(server.baseUrl, 'GET', '/_matrix/client/v3/joined_rooms', { token: user.accessToken })).body.joined_rooms;
}

// Synapse admin API, "Room Admin API": as an admin, and refused to everyone else.
describe.each(testDialects())('Synapse admin API: rooms, on %s', (dialect) => {
  let server: TestServer;
  let root: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let general: string;
  let secret: string;
  let big: string;
  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    root = await makeAdmin(server);
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    general = await createRoom(server, alice, { preset: 'public_chat', name: 'General', room_alias_name: 'general', visibility: 'public' });
    secret = await createRoom(server, alice, { preset: 'private_chat', name: 'secret stuff' });
    big = await createRoom(server, bob, { preset: 'public_chat', name: 'Big room' });
    await join(server, alice, big);
    await join(server, bob, general);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('refuses every room endpoint without a token (401) and to non-admins (403)', async () => {
    const r = enc(general);
    for (const [method, path, body] of [
      ['GET', '/v1/rooms'],
      ['GET', `/v1/rooms/${r}`],
      ['GET', `/v1/rooms/${r}/members`],
      ['GET', `/v1/rooms/${r}/state`],
      ['DELETE', `/v1/rooms/${r}`, {}],
      ['DELETE', `/v2/rooms/${r}`, {}],
      ['GET', `/v2/rooms/${r}/delete_status`],
      ['GET', '/v2/rooms/delete_status/abc'],
      ['POST', `/v1/rooms/${r}/make_room_admin`, {}],
    ] as Array<[string, string, unknown?]>) {
      await expectAdminOnly(server, alice, method, path, body);
    }
    expect(await joinedRooms(server, alice)).toContain(general);
  });

  it('lists rooms with Synapse fields, order, search and paging', async () => {
    const res = await admin(server, 'GET', '/v1/rooms', root.accessToken);
    expect(res.status).toBe(200);
    expect(res.body.total_rooms).toBe(3);
    expect(res.body.offset).toBe(0);
    expect(res.body.rooms.map((r: { name: string }) => r.name)).toEqual(['Big room', 'General', 'secret stuff']);
    const g = res.body.rooms.find((r: { room_id: string }) => r.room_id === general);
    expect(g).toMatchObject({
      name: 'General',
      canonical_alias: '#general:localhost',
      joined_members: 2,
      joined_local_members: 2,
      creator: alice.userId,
      federatable: true,
      public: true,
      join_rules: 'public',
      history_visibility: 'shared',
      room_type: null,
    });
    expect(g.version).toEqual(expect.any(String));
    expect(g.state_events).toBeGreaterThan(5);

    const bySize = await admin(server, 'GET', '/v1/rooms?order_by=size', root.accessToken);
    expect(bySize.body.rooms.at(-1).room_id).toBe(secret);
    const reversed = await admin(server, 'GET', '/v1/rooms?order_by=name&dir=b', root.accessToken);
    expect(reversed.body.rooms[0].room_id).toBe(secret);
    const search = await admin(server, 'GET', '/v1/rooms?search_term=SECRET', root.accessToken);
    expect(search.body.rooms.map((r: { room_id: string }) => r.room_id)).toEqual([secret]);
    expect((await admin(server, 'GET', `/v1/rooms?search_term=${enc('#general')}`, root.accessToken)).body.total_rooms).toBe(1);
    const page = await admin(server, 'GET', '/v1/rooms?limit=2', root.accessToken);
    expect(page.body.rooms).toHaveLength(2);
    expect(page.body.next_batch).toBe(2);
    const next = await admin(server, 'GET', '/v1/rooms?limit=2&from=2', root.accessToken);
    expect(next.body.rooms).toHaveLength(1);
    expect(next.body.prev_batch).toBe(0);
    expect(next.body.next_batch).toBeUndefined();
    for (const q of ['from=-1', 'limit=-1', 'limit=x', 'order_by=evil', 'dir=up']) {
      expect((await admin(server, 'GET', `/v1/rooms?${q}`, root.accessToken)).status, q).toBe(400);
    }
    expect((await admin(server, 'GET', '/v1/rooms?limit=100000000', root.accessToken)).body.total_rooms).toBe(3);
  });

  it('shows details, members and state; unknown rooms are 404, malformed ids 400', async () => {
    const details = await admin(server, 'GET', `/v1/rooms/${enc(general)}`, root.accessToken);
    expect(details.status).toBe(200);
    expect(details.body).toMatchObject({ room_id: general, name: 'General', topic: null, avatar: null, joined_local_devices: 2, forgotten: false });
    const members = await admin(server, 'GET', `/v1/rooms/${enc(general)}/members`, root.accessToken);
    expect(members.body).toEqual({ members: [alice.userId, bob.userId].sort(), total: 2 });
    const state = await admin(server, 'GET', `/v1/rooms/${enc(secret)}/state`, root.accessToken);
    expect(state.body.state.map((e: { type: string }) => e.type)).toContain('m.room.name');
    expect(state.body.state.find((e: { type: string }) => e.type === 'm.room.name').content.name).toBe('secret stuff');
    for (const path of ['', '/members', '/state']) {
      expect(await admin(server, 'GET', `/v1/rooms/${enc('!nope:localhost')}${path}`, root.accessToken)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
      expect((await admin(server, 'GET', `/v1/rooms/${enc('not a room')}${path}`, root.accessToken)).status).toBe(400);
      expect([400, 404]).toContain((await admin(server, 'GET', `/v1/rooms/__proto__${path}`, root.accessToken)).status);
    }
  });

  it('makes a local user room admin: joined to a private room at the top power level', async () => {
    const res = await admin(server, 'POST', `/v1/rooms/${enc(secret)}/make_room_admin`, root.accessToken, {});
    expect(res).toMatchObject({ status: 200, body: {} });
    expect(await joinedRooms(server, root)).toContain(secret);
    const pl = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(secret)}/state/m.room.power_levels/`, { token: root.accessToken });
    expect(pl.body.users[root.userId]).toBe(100);
    // Someone else, named in the body.
    const carol = await registerUser(server.baseUrl, 'carol');
    expect((await admin(server, 'POST', `/v1/rooms/${enc(big)}/make_room_admin`, root.accessToken, { user_id: carol.userId })).status).toBe(200);
    expect(await joinedRooms(server, carol)).toContain(big);
    expect((await admin(server, 'POST', `/v1/rooms/${enc('!nope:localhost')}/make_room_admin`, root.accessToken, {})).status).toBe(404);
    expect((await admin(server, 'POST', `/v1/rooms/${enc(big)}/make_room_admin`, root.accessToken, { user_id: '@ghost:localhost' })).status).toBe(404);
    expect((await admin(server, 'POST', `/v1/rooms/${enc(big)}/make_room_admin`, root.accessToken, { user_id: 5 })).status).toBe(400);
  });

  it('deletes a room synchronously (v1): users leave, aliases go, blocked, purged', async () => {
    const doomed = await createRoom(server, alice, { preset: 'public_chat', name: 'Doomed', room_alias_name: 'doomed' });
    await join(server, bob, doomed);
    const sent = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(doomed)}/send/m.room.message/t1`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body: 'forbidden words' },
    });
    const res = await admin(server, 'DELETE', `/v1/rooms/${enc(doomed)}`, root.accessToken, { block: true, purge: true });
    expect(res.status).toBe(200);
    expect(res.body.kicked_users.sort()).toEqual([alice.userId, bob.userId].sort());
    expect(res.body).toMatchObject({ failed_to_kick_users: [], local_aliases: ['#doomed:localhost'], new_room_id: null });
    expect(await joinedRooms(server, alice)).not.toContain(doomed);
    expect(await joinedRooms(server, bob)).not.toContain(doomed);
    expect((await admin(server, 'GET', `/v1/rooms/${enc(doomed)}`, root.accessToken)).status).toBe(404);
    expect((await admin(server, 'GET', `/v1/rooms?search_term=Doomed`, root.accessToken)).body.total_rooms).toBe(0);
    expect((await request(server.baseUrl, 'GET', `/_matrix/client/v3/directory/room/${enc('#doomed:localhost')}`)).status).toBe(404);
    const rejoin = await join(server, bob, doomed);
    expect(rejoin).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
    // Purged: only the redacted form of the message is stored.
    const stored = await server.hs.services.db.knex('events').where({ event_id: sent.body.event_id }).first('json');
    expect(stored.json).not.toContain('forbidden words');
    expect((await admin(server, 'GET', `/v2/rooms/${enc(doomed)}/delete_status`, root.accessToken)).body.results[0].status).toBe('complete');
  });

  it('moves local users to a new room with new_room_user_id, and keeps an unpurged room listed', async () => {
    const old = await createRoom(server, alice, { preset: 'public_chat', name: 'Old', room_alias_name: 'old' });
    await join(server, bob, old);
    const res = await admin(server, 'DELETE', `/v1/rooms/${enc(old)}`, root.accessToken, {
      new_room_user_id: root.userId,
      room_name: 'Moved here',
      message: 'The old room was closed',
      purge: false,
    });
    expect(res.status).toBe(200);
    const newRoom = res.body.new_room_id as string;
    expect(newRoom).toMatch(/^!/);
    expect(res.body.local_aliases).toEqual(['#old:localhost']);
    expect(await joinedRooms(server, bob)).toContain(newRoom);
    expect(await joinedRooms(server, bob)).not.toContain(old);
    const alias = await request(server.baseUrl, 'GET', `/_matrix/client/v3/directory/room/${enc('#old:localhost')}`);
    expect(alias.body.room_id).toBe(newRoom);
    expect((await admin(server, 'GET', `/v1/rooms/${enc(newRoom)}`, root.accessToken)).body.name).toBe('Moved here');
    // Not purged: still there for the admin, with no local members.
    expect((await admin(server, 'GET', `/v1/rooms/${enc(old)}`, root.accessToken)).body.joined_local_members).toBe(0);
    expect((await admin(server, 'DELETE', `/v1/rooms/${enc(old)}`, root.accessToken, { new_room_user_id: '@x:elsewhere.example' })).status).toBe(400);
  });

  it('deletes in the background (v2) with status by room and by delete id', async () => {
    const later = await createRoom(server, bob, { preset: 'private_chat', name: 'Later' });
    const res = await admin(server, 'DELETE', `/v2/rooms/${enc(later)}`, root.accessToken, {});
    expect(res.status).toBe(200);
    const deleteId = res.body.delete_id as string;
    await server.hs.services.roomDeletions.idle();
    const byId = await admin(server, 'GET', `/v2/rooms/delete_status/${enc(deleteId)}`, root.accessToken);
    expect(byId.body).toMatchObject({ status: 'complete', shutdown_room: { kicked_users: [bob.userId], failed_to_kick_users: [], local_aliases: [], new_room_id: null } });
    const byRoom = await admin(server, 'GET', `/v2/rooms/${enc(later)}/delete_status`, root.accessToken);
    expect(byRoom.body.results).toEqual([expect.objectContaining({ delete_id: deleteId, status: 'complete' })]);
    expect(await joinedRooms(server, bob)).not.toContain(later);
    expect((await admin(server, 'GET', '/v2/rooms/delete_status/unknown-id', root.accessToken)).status).toBe(404);
    expect((await admin(server, 'GET', `/v2/rooms/${enc('!nope:localhost')}/delete_status`, root.accessToken)).status).toBe(404);
  });

  it('refuses deleting unknown rooms (404) unless only blocking them; bad bodies are 400', async () => {
    expect(await admin(server, 'DELETE', `/v1/rooms/${enc('!nope:localhost')}`, root.accessToken, {})).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
    expect((await admin(server, 'DELETE', `/v2/rooms/${enc('!nope:localhost')}`, root.accessToken, {})).status).toBe(404);
    expect((await admin(server, 'DELETE', `/v1/rooms/${enc('not-a-room')}`, root.accessToken, {})).status).toBe(400);
    expect((await admin(server, 'DELETE', `/v1/rooms/${enc(general)}`, root.accessToken, { purge: 'yes' })).status).toBe(400);
    const blocked = await admin(server, 'DELETE', `/v1/rooms/${enc('!future:elsewhere.example')}`, root.accessToken, { block: true });
    expect(blocked).toMatchObject({ status: 200, body: { kicked_users: [] } });
    expect(await joinedRooms(server, alice)).toContain(general);
  });
});
