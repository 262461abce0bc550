import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('room upgrades on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let aliceClient: MatrixClient;
  let bobClient: MatrixClient;

  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const state = async (client: MatrixClient, roomId: string, type: string, stateKey = ''): Promise<Json> =>
    client.getStateEvent(roomId, type, stateKey);
  const stateEvent = async (user: TestUser, roomId: string, type: string, stateKey = ''): Promise<Json> => {
    const res = await api(user, 'GET', `/rooms/${enc(roomId)}/state?format=event`);
    if (res.status !== 200) throw new Error(`state failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.find((e: Json) => e.type === type && e.state_key === stateKey);
  };

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
    aliceClient = sdkClient(server.baseUrl, alice);
    bobClient = sdkClient(server.baseUrl, bob);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('replaces a room: state, power levels and aliases move, the old room is tombstoned and restricted', async () => {
    const { room_id: oldRoom } = await aliceClient.createRoom({
      name: 'Garden',
      topic: 'Plants',
      room_alias_name: 'garden-up',
      preset: 'public_chat' as never,
      room_version: '10',
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    await aliceClient.joinRoom(oldRoom);
    await bobClient.joinRoom(oldRoom);
    expect((await api(alice, 'PUT', `/directory/room/${enc('#garden-alt:localhost')}`, { room_id: oldRoom })).status).toBe(200);
    await aliceClient.sendStateEvent(oldRoom, 'm.room.canonical_alias' as never, { alias: '#garden-up:localhost', alt_aliases: ['#garden-alt:localhost', '#elsewhere:remote.example'] } as never, '');
    const pl = await state(aliceClient, oldRoom, 'm.room.power_levels');
    await aliceClient.sendStateEvent(oldRoom, 'm.room.power_levels' as never, { ...pl, users: { ...pl.users, [bob.userId]: 20 } } as never, '');
    expect((await api(alice, 'POST', `/rooms/${enc(oldRoom)}/ban`, { user_id: carol.userId, reason: 'spam' })).status).toBe(200);
    expect((await api(alice, 'PUT', `/directory/list/room/${enc(oldRoom)}`, { visibility: 'public' })).status).toBe(200);

    const { replacement_room: newRoom } = await aliceClient.upgradeRoom(oldRoom, '11');
    expect(newRoom).toMatch(/^!.+:localhost$/);
    expect(newRoom).not.toBe(oldRoom);

    // The old room: tombstone pointing at the replacement, nobody below 50 may talk or invite.
    const tombstone = await stateEvent(alice, oldRoom, 'm.room.tombstone');
    expect(tombstone.content).toEqual({ body: expect.any(String), replacement_room: newRoom });
    const oldPl = await state(aliceClient, oldRoom, 'm.room.power_levels');
    expect(oldPl.events_default).toBe(50);
    expect(oldPl.invite).toBe(50);
    const refused = await api(bob, 'PUT', `/rooms/${enc(oldRoom)}/send/m.room.message/after-upgrade`, { msgtype: 'm.text', body: 'still here?' });
    expect(refused.status).toBe(403);

    // The replacement: predecessor in its create event, the room version asked for, the state copied.
    const create = await stateEvent(alice, newRoom, 'm.room.create');
    expect(create.content).toMatchObject({ room_version: '11', predecessor: { room_id: oldRoom, event_id: tombstone.event_id } });
    expect(create.content.creator).toBeUndefined(); // v11: the sender is the creator
    expect(create.sender).toBe(alice.userId);
    expect(await state(aliceClient, newRoom, 'm.room.name')).toEqual({ name: 'Garden' });
    expect(await state(aliceClient, newRoom, 'm.room.topic')).toEqual({ topic: 'Plants' });
    expect(await state(aliceClient, newRoom, 'm.room.encryption')).toEqual({ algorithm: 'm.megolm.v1.aes-sha2' });
    expect(await state(aliceClient, newRoom, 'm.room.join_rules')).toEqual({ join_rule: 'public' });
    expect(await state(aliceClient, newRoom, 'm.room.history_visibility')).toEqual({ history_visibility: 'shared' });
    const newPl = await state(aliceClient, newRoom, 'm.room.power_levels');
    expect(newPl.users).toEqual({ [alice.userId]: 100, [bob.userId]: 20 });
    expect(newPl.events_default).toBe(0);
    const carolMember = await stateEvent(alice, newRoom, 'm.room.member', carol.userId);
    expect(carolMember.content).toEqual({ membership: 'ban', reason: 'spam' });

    // Only the upgrader is in the new room; the others follow the tombstone.
    expect(Object.keys((await aliceClient.getJoinedRoomMembers(newRoom)).joined)).toEqual([alice.userId]);

    // Local aliases now point at the new room, the canonical alias moved with them; remote ones stayed.
    expect((await aliceClient.getRoomIdForAlias('#garden-up:localhost')).room_id).toBe(newRoom);
    expect((await aliceClient.getRoomIdForAlias('#garden-alt:localhost')).room_id).toBe(newRoom);
    expect((await aliceClient.getLocalAliases(newRoom)).aliases.sort()).toEqual(['#garden-alt:localhost', '#garden-up:localhost']);
    expect(await state(aliceClient, newRoom, 'm.room.canonical_alias')).toEqual({ alias: '#garden-up:localhost', alt_aliases: ['#garden-alt:localhost'] });
    expect(await state(aliceClient, oldRoom, 'm.room.canonical_alias')).toEqual({ alt_aliases: ['#elsewhere:remote.example'] });

    // The room directory lists the replacement instead.
    expect((await api(alice, 'GET', `/directory/list/room/${enc(newRoom)}`)).body.visibility).toBe('public');
    expect((await api(alice, 'GET', `/directory/list/room/${enc(oldRoom)}`)).body.visibility).toBe('private');

    // Bob follows the tombstone through the alias.
    expect((await bobClient.joinRoom('#garden-up:localhost')).roomId).toBe(newRoom);
  });

  it('gives the replacement guest access: copied when set, the private_chat preset default (can_join) when not, as Synapse', async () => {
    // public_chat sets no m.room.guest_access (SyTest's rooms are created this way).
    const { room_id: publicRoom } = await aliceClient.createRoom({ preset: 'public_chat' as never, room_version: '10' });
    expect((await api(alice, 'GET', `/rooms/${enc(publicRoom)}/state/m.room.guest_access`)).status).toBe(404);
    const { replacement_room: fromPublic } = await aliceClient.upgradeRoom(publicRoom, '11');
    expect(await state(aliceClient, fromPublic, 'm.room.guest_access')).toEqual({ guest_access: 'can_join' });
    expect(await state(aliceClient, fromPublic, 'm.room.join_rules')).toEqual({ join_rule: 'public' });

    const { room_id: closedRoom } = await aliceClient.createRoom({ preset: 'public_chat' as never, room_version: '10' });
    await aliceClient.sendStateEvent(closedRoom, 'm.room.guest_access' as never, { guest_access: 'forbidden' } as never, '');
    const { replacement_room: fromClosed } = await aliceClient.upgradeRoom(closedRoom, '11');
    expect(await state(aliceClient, fromClosed, 'm.room.guest_access')).toEqual({ guest_access: 'forbidden' });
  });

  it('lets a user with just enough power upgrade, raising them only while the state is copied', async () => {
    const { room_id: oldRoom } = await aliceClient.createRoom({
      preset: 'public_chat' as never,
      room_version: '9',
      name: 'Delegated',
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    await bobClient.joinRoom(oldRoom);
    const pl = await state(aliceClient, oldRoom, 'm.room.power_levels');
    await aliceClient.sendStateEvent(
      oldRoom,
      'm.room.power_levels' as never,
      { ...pl, users: { ...pl.users, [bob.userId]: 60 }, events: { ...pl.events, 'm.room.tombstone': 60 } } as never,
      '',
    );

    const { replacement_room: newRoom } = await bobClient.upgradeRoom(oldRoom, '10');
    const create = await stateEvent(bob, newRoom, 'm.room.create');
    expect(create.content).toMatchObject({ creator: bob.userId, room_version: '10', predecessor: { room_id: oldRoom } });
    // Encryption needs 100: bob was raised to copy it, then given back his 60.
    expect(await state(bobClient, newRoom, 'm.room.encryption')).toEqual({ algorithm: 'm.megolm.v1.aes-sha2' });
    const newPl = await state(bobClient, newRoom, 'm.room.power_levels');
    expect(newPl.users).toEqual({ [alice.userId]: 100, [bob.userId]: 60 });
    expect(newPl.events['m.room.tombstone']).toBe(60);
  });

  it('refuses members without the power to send a tombstone, strangers, and unknown room versions', async () => {
    const { room_id: roomId } = await aliceClient.createRoom({ preset: 'public_chat' as never, name: 'Keep' });
    await bobClient.joinRoom(roomId);

    const denied = await api(bob, 'POST', `/rooms/${enc(roomId)}/upgrade`, { new_version: '11' });
    expect(denied.status).toBe(403);
    expect(denied.body.errcode).toBe('M_FORBIDDEN');
    await expect(bobClient.upgradeRoom(roomId, '11')).rejects.toMatchObject({ errcode: 'M_FORBIDDEN' });

    const stranger = await api(carol, 'POST', `/rooms/${enc(roomId)}/upgrade`, { new_version: '11' });
    expect(stranger.status).toBe(403);

    const unsupported = await api(alice, 'POST', `/rooms/${enc(roomId)}/upgrade`, { new_version: '999' });
    expect(unsupported.status).toBe(400);
    expect(unsupported.body.errcode).toBe('M_UNSUPPORTED_ROOM_VERSION');

    const missing = await api(alice, 'POST', `/rooms/${enc(roomId)}/upgrade`, {});
    expect(missing.status).toBe(400);

    // Nothing happened to the room.
    const tombstone = await api(alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.tombstone/`);
    expect(tombstone.status).toBe(404);
    expect(await state(aliceClient, roomId, 'm.room.name')).toEqual({ name: 'Keep' });
  });

  it('keeps the children of an upgraded space', async () => {
    const { room_id: space } = await aliceClient.createRoom({ preset: 'public_chat' as never, name: 'Space', creation_content: { type: 'm.space' } });
    const { room_id: child } = await aliceClient.createRoom({ preset: 'public_chat' as never, name: 'Child' });
    await aliceClient.sendStateEvent(space, 'm.space.child' as never, { via: ['localhost'] } as never, child);

    const { replacement_room: newSpace } = await aliceClient.upgradeRoom(space, '11');
    const create = await stateEvent(alice, newSpace, 'm.room.create');
    expect(create.content.type).toBe('m.space');
    expect(await state(aliceClient, newSpace, 'm.space.child', child)).toEqual({ via: ['localhost'] });
  });

  // SyTest "local user has tags copied to the new room" and "/upgrade preserves direct room state", as Synapse.
  it('copies tags and m.direct of local users into the replacement room when they join it', async () => {
    const oldRoom = (await api(alice, 'POST', '/createRoom', { preset: 'public_chat', room_version: '10' })).body.room_id as string;
    expect((await api(bob, 'POST', `/join/${enc(oldRoom)}`, {})).status).toBe(200);
    expect((await api(bob, 'PUT', `/user/${enc(bob.userId)}/rooms/${enc(oldRoom)}/tags/test_tag`, { order: 0.5 })).status).toBe(200);
    expect((await api(alice, 'PUT', `/user/${enc(alice.userId)}/account_data/m.direct`, { [bob.userId]: [oldRoom] })).status).toBe(200);
    const newRoom = (await api(alice, 'POST', `/rooms/${enc(oldRoom)}/upgrade`, { new_version: '11' })).body.replacement_room as string;
    expect((await api(bob, 'POST', `/join/${enc(newRoom)}`, {})).status).toBe(200);
    const deadline = Date.now() + 5000;
    let tags: Json = {};
    let direct: Json = {};
    while (Date.now() < deadline) {
      tags = (await api(bob, 'GET', `/user/${enc(bob.userId)}/rooms/${enc(newRoom)}/tags`)).body.tags;
      direct = (await api(alice, 'GET', `/user/${enc(alice.userId)}/account_data/m.direct`)).body;
      if (Object.keys(tags).length && direct[bob.userId]?.includes(newRoom)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(tags).toEqual({ test_tag: { order: 0.5 } });
    expect(direct).toEqual({ [bob.userId]: [oldRoom, newRoom] });
  });
});

