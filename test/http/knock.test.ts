import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('knocking on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let aliceClient: MatrixClient;
  let bobClient: MatrixClient;
  let carolClient: MatrixClient;

  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  async function sync(user: TestUser, since?: string): Promise<Json> {
    const res = await api(user, 'GET', `/sync?timeout=0${since ? `&since=${enc(since)}` : ''}`);
    if (res.status !== 200) throw new Error(`sync failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }
  const knockRoom = (name: string, extra: Record<string, unknown> = {}) =>
    aliceClient.createRoom({
      preset: 'private_chat' as never,
      name,
      topic: `${name} topic`,
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }],
      ...extra,
    });
  const members = async (user: TestUser, roomId: string, membership: string): Promise<string[]> => {
    const res = await api(user, 'GET', `/rooms/${enc(roomId)}/members?membership=${membership}`);
    if (res.status !== 200) throw new Error(`members failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.chunk.map((e: Json) => e.state_key);
  };

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
    aliceClient = sdkClient(server.baseUrl, alice);
    bobClient = sdkClient(server.baseUrl, bob);
    carolClient = sdkClient(server.baseUrl, carol);
    await bobClient.setDisplayName('Bob B.');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('shows a knock to the knocker in /sync and to moderators in the member list; an invite accepts it', async () => {
    const { room_id: roomId } = await knockRoom('Knockable');
    const before = await sync(bob);

    const knocked = await bobClient.knockRoom(roomId, { reason: 'Let me in please' });
    expect(knocked.room_id).toBe(roomId);

    // The knocker: the room under rooms.knock with stripped state, incrementally and on an initial sync.
    for (const res of [await sync(bob, before.next_batch), await sync(bob)]) {
      const knock = res.rooms.knock[roomId];
      expect(knock).toBeDefined();
      const events: Json[] = knock.knock_state.events;
      const find = (type: string, stateKey = '') => events.find((e) => e.type === type && e.state_key === stateKey);
      expect(find('m.room.member', bob.userId).content).toEqual({ membership: 'knock', displayname: 'Bob B.', reason: 'Let me in please' });
      expect(find('m.room.join_rules').content).toEqual({ join_rule: 'knock' });
      expect(find('m.room.name').content).toEqual({ name: 'Knockable' });
      expect(find('m.room.create')).toBeDefined();
      expect(res.rooms.join[roomId]).toBeUndefined();
    }

    // The moderators: the knock is in the member list and in their timeline.
    expect(await members(alice, roomId, 'knock')).toEqual([bob.userId]);
    const aliceSync = await sync(alice);
    const timeline: Json[] = aliceSync.rooms.join[roomId].timeline.events;
    expect(timeline.some((e) => e.type === 'm.room.member' && e.state_key === bob.userId && e.content.membership === 'knock')).toBe(true);

    // Knocking again changes nothing; the knocker may not join on their own.
    const again = await api(bob, 'POST', `/knock/${enc(roomId)}`, { reason: 'Let me in please' });
    expect(again.status).toBe(200);
    const selfJoin = await api(bob, 'POST', `/join/${enc(roomId)}`, {});
    expect(selfJoin.status).toBe(403);

    // Accepting: an invite, then the knocker joins.
    const beforeInvite = await sync(bob);
    await aliceClient.invite(roomId, bob.userId);
    const invited = await sync(bob, beforeInvite.next_batch);
    expect(invited.rooms.invite[roomId]).toBeDefined();
    expect(invited.rooms.knock[roomId]).toBeUndefined();
    await bobClient.joinRoom(roomId);
    expect(await members(alice, roomId, 'join')).toEqual(expect.arrayContaining([alice.userId, bob.userId]));
  });

  it('lets a moderator reject a knock with a kick, and the knocker withdraw one by leaving', async () => {
    const { room_id: roomId } = await knockRoom('Picky', { room_alias_name: 'picky' });
    const knocked = await carolClient.knockRoom('#picky:localhost');
    expect(knocked.room_id).toBe(roomId);
    const base = await sync(carol);
    expect(base.rooms.knock[roomId]).toBeDefined();

    await aliceClient.kick(roomId, carol.userId, 'Not today');
    expect(await members(alice, roomId, 'knock')).toEqual([]);
    const after = await sync(carol, base.next_batch);
    expect(after.rooms.knock[roomId]).toBeUndefined();
    expect(after.rooms.leave[roomId]).toBeDefined();
    expect((await sync(carol)).rooms.knock[roomId]).toBeUndefined();

    // Knocking again after a rejection is allowed; so is withdrawing it.
    await carolClient.knockRoom(roomId);
    expect(await members(alice, roomId, 'knock')).toEqual([carol.userId]);
    await carolClient.leave(roomId);
    expect(await members(alice, roomId, 'knock')).toEqual([]);
  });

  it('refuses knocks where the join rules, the room version or the membership do not allow one', async () => {
    const { room_id: inviteOnly } = await aliceClient.createRoom({ preset: 'private_chat' as never });
    const refused = await api(bob, 'POST', `/knock/${enc(inviteOnly)}`, {});
    expect(refused.status).toBe(403);
    expect(refused.body.errcode).toBe('M_FORBIDDEN');
    await expect(bobClient.knockRoom(inviteOnly)).rejects.toMatchObject({ errcode: 'M_FORBIDDEN' });

    const { room_id: publicRoom } = await aliceClient.createRoom({ preset: 'public_chat' as never });
    expect((await api(bob, 'POST', `/knock/${enc(publicRoom)}`, {})).status).toBe(403);

    // Room version 6 has no knocking, whatever its join rule says.
    const { room_id: oldRoom } = await knockRoom('Old', { room_version: '6' });
    const old = await api(bob, 'POST', `/knock/${enc(oldRoom)}`, {});
    expect(old.status).toBe(403);
    expect(old.body.errcode).toBe('M_FORBIDDEN');

    // Already joined, or banned.
    const { room_id: roomId } = await knockRoom('Members');
    expect((await api(alice, 'POST', `/knock/${enc(roomId)}`, {})).status).toBe(403);
    await aliceClient.ban(roomId, carol.userId);
    expect((await api(carol, 'POST', `/knock/${enc(roomId)}`, {})).status).toBe(403);

    const unknown = await api(bob, 'POST', `/knock/${enc('!nowhere:localhost')}`, {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_NOT_FOUND');
    expect((await api(bob, 'POST', `/knock/${enc('#nothing:localhost')}`, {})).status).toBe(404);
  });

  it('lists a knockable room in a space hierarchy to strangers', async () => {
    const { room_id: space } = await aliceClient.createRoom({ preset: 'public_chat' as never, creation_content: { type: 'm.space' } });
    const { room_id: roomId } = await knockRoom('Ask first');
    await aliceClient.sendStateEvent(space, 'm.space.child' as never, { via: ['localhost'] } as never, roomId);
    const res = await carolClient.getRoomHierarchy(space);
    expect(res.rooms.map((r) => r.room_id)).toEqual([space, roomId]);
    expect(res.rooms[1]).toMatchObject({ join_rule: 'knock', name: 'Ask first' });
  });
});
