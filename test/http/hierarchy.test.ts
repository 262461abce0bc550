import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('space hierarchy on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let aliceClient: MatrixClient;
  let bobClient: MatrixClient;
  // space ─┬─ pub (order "a", suggested)
  //        ├─ priv (order "b", invite-only)
  //        ├─ sub (order "c", a public space) ── deep (public)
  //        ├─ remote child the server does not know (skipped)
  //        └─ child without via (not a child)
  let space: string;
  let pub: string;
  let priv: string;
  let sub: string;
  let deep: string;
  let noVia: string;

  const enc = encodeURIComponent;
  const ids = (rooms: Json[]) => rooms.map((r) => r.room_id);
  const hierarchy = (user: TestUser, roomId: string, qs = '') =>
    request(server.baseUrl, 'GET', `/_matrix/client/v1/rooms/${enc(roomId)}/hierarchy${qs}`, { token: user.accessToken });

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    aliceClient = sdkClient(server.baseUrl, alice);
    bobClient = sdkClient(server.baseUrl, bob);

    const create = async (opts: Record<string, unknown>) => (await aliceClient.createRoom(opts as never)).room_id;
    space = await create({ preset: 'public_chat', name: 'The Space', topic: 'Everything', creation_content: { type: 'm.space' }, room_alias_name: 'the-space' });
    pub = await create({ preset: 'public_chat', name: 'Public', topic: 'Open to all' });
    priv = await create({ preset: 'private_chat', name: 'Private' });
    sub = await create({ preset: 'public_chat', name: 'Sub', creation_content: { type: 'm.space' } });
    deep = await create({ preset: 'public_chat', name: 'Deep' });
    noVia = await create({ preset: 'public_chat', name: 'Not a child' });
    const child = (parent: string, roomId: string, content: Record<string, unknown>) =>
      aliceClient.sendStateEvent(parent, 'm.space.child' as never, content as never, roomId);
    await child(space, pub, { via: ['localhost'], order: 'a', suggested: true });
    await child(space, priv, { via: ['localhost'], order: 'b' });
    await child(space, sub, { via: ['localhost'], order: 'c' });
    await child(space, '!unknown:elsewhere.example', { via: ['elsewhere.example'], order: 'd' });
    await child(space, noVia, { order: 'e' });
    await child(sub, deep, { via: ['localhost'] });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('walks the space depth first and shows a stranger only what they could see or join', async () => {
    const res = await bobClient.getRoomHierarchy(space);
    expect(ids(res.rooms)).toEqual([space, pub, sub, deep]);
    expect(res.next_batch).toBeUndefined();

    const root = res.rooms[0]!;
    expect(root).toMatchObject({
      room_id: space,
      name: 'The Space',
      topic: 'Everything',
      canonical_alias: '#the-space:localhost',
      room_type: 'm.space',
      join_rule: 'public',
      num_joined_members: 1,
      world_readable: false,
      guest_can_join: false,
    });
    // children_state is the space's own state: every valid child, visible to the stranger or not, in order.
    expect(root.children_state.map((e) => e.state_key)).toEqual([pub, priv, sub, '!unknown:elsewhere.example']);
    const first = root.children_state[0]! as Json;
    expect(first).toMatchObject({ type: 'm.space.child', sender: alice.userId, content: { via: ['localhost'], order: 'a', suggested: true } });
    expect(typeof first.origin_server_ts).toBe('number');

    const publicRoom = res.rooms[1]! as Json;
    expect(publicRoom).toMatchObject({ room_id: pub, name: 'Public', topic: 'Open to all', join_rule: 'public', num_joined_members: 1 });
    expect(publicRoom.children_state).toEqual([]); // not a space
    expect(publicRoom.room_type).toBeUndefined();
  });

  it('shows members their private rooms', async () => {
    const res = await aliceClient.getRoomHierarchy(space);
    expect(ids(res.rooms)).toEqual([space, pub, priv, sub, deep]);
    expect(res.rooms[2]).toMatchObject({ room_id: priv, join_rule: 'invite', name: 'Private' });
  });

  it('stops at max_depth', async () => {
    expect(ids((await aliceClient.getRoomHierarchy(space, undefined, 0)).rooms)).toEqual([space]);
    expect(ids((await aliceClient.getRoomHierarchy(space, undefined, 1)).rooms)).toEqual([space, pub, priv, sub]);
    expect(ids((await aliceClient.getRoomHierarchy(space, undefined, 2)).rooms)).toEqual([space, pub, priv, sub, deep]);
  });

  it('paginates with next_batch and refuses changed parameters', async () => {
    const page1 = await aliceClient.getRoomHierarchy(space, 2);
    expect(ids(page1.rooms)).toEqual([space, pub]);
    expect(page1.next_batch).toEqual(expect.any(String));
    const page2 = await aliceClient.getRoomHierarchy(space, 2, undefined, false, page1.next_batch);
    expect(ids(page2.rooms)).toEqual([priv, sub]);
    const page3 = await aliceClient.getRoomHierarchy(space, 2, undefined, false, page2.next_batch);
    expect(ids(page3.rooms)).toEqual([deep]);
    expect(page3.next_batch).toBeUndefined();

    const limited = await aliceClient.getRoomHierarchy(space, 2, 1);
    const changed = await hierarchy(alice, space, `?limit=2&max_depth=3&from=${enc(limited.next_batch!)}`);
    expect(changed.status).toBe(400);
    expect(changed.body.errcode).toBe('M_INVALID_PARAM');
    const bogus = await hierarchy(alice, space, '?from=not-a-token');
    expect(bogus.status).toBe(400);
    const zero = await hierarchy(alice, space, '?limit=0');
    expect(zero.status).toBe(400);
    expect(zero.body.errcode).toBe('M_INVALID_PARAM');
  });

  it('only follows suggested children with suggested_only', async () => {
    const res = await bobClient.getRoomHierarchy(space, undefined, undefined, true);
    expect(ids(res.rooms)).toEqual([space, pub]);
    expect(res.rooms[0]!.children_state.map((e) => e.state_key)).toEqual([pub]);
  });

  it('refuses a root the user can neither see nor join', async () => {
    const res = await hierarchy(bob, priv);
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe('M_FORBIDDEN');
    const unknown = await hierarchy(bob, '!nowhere:localhost');
    expect(unknown.status).toBe(403);
    // Invited users may look.
    await aliceClient.invite(priv, bob.userId);
    const invited = await bobClient.getRoomHierarchy(priv);
    expect(ids(invited.rooms)).toEqual([priv]);
  });

  it('shows world-readable and restricted rooms to those who may see or join them', async () => {
    const { room_id: parent } = await aliceClient.createRoom({ preset: 'public_chat' as never, creation_content: { type: 'm.space' } });
    const { room_id: readable } = await aliceClient.createRoom({
      preset: 'private_chat' as never,
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }],
    });
    const { room_id: restricted } = await aliceClient.createRoom({
      preset: 'private_chat' as never,
      room_version: '10',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: parent }] } }],
    });
    for (const child of [readable, restricted]) await aliceClient.sendStateEvent(parent, 'm.space.child' as never, { via: ['localhost'] } as never, child);

    // Not yet in the parent: the restricted room is hidden, the world-readable one is not.
    const before = await bobClient.getRoomHierarchy(parent);
    expect(ids(before.rooms).sort()).toEqual([parent, readable].sort());
    expect(before.rooms.find((r) => r.room_id === readable)!.world_readable).toBe(true);

    await bobClient.joinRoom(parent);
    const after = await bobClient.getRoomHierarchy(parent);
    expect(ids(after.rooms).sort()).toEqual([parent, readable, restricted].sort());
    expect(after.rooms.find((r) => r.room_id === restricted)).toMatchObject({ join_rule: 'restricted', allowed_room_ids: [parent] });
  });
});
