// Room version 12 (MSC4289, MSC4291, MSC4297) through the client API: creation, creators, power levels, upgrades.
import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

/** `!` + 43 characters of URL-safe unpadded base64 (a sha256): no server part. */
const V12_ROOM_ID = /^![A-Za-z0-9_-]{43}$/;

describe.each(testDialects())('room version 12 on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let aliceClient: MatrixClient;
  let bobClient: MatrixClient;

  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const stateEvents = async (user: TestUser, roomId: string): Promise<Json[]> => {
    const res = await api(user, 'GET', `/rooms/${enc(roomId)}/state`);
    if (res.status !== 200) throw new Error(`state failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const stateEvent = async (user: TestUser, roomId: string, type: string, stateKey = ''): Promise<Json> =>
    (await stateEvents(user, roomId)).find((e: Json) => e.type === type && e.state_key === stateKey);

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

  it('advertises 12 as stable and keeps 10 the default', async () => {
    const caps = await aliceClient.getCapabilities();
    const versions = caps['m.room_versions']!;
    expect(versions.default).toBe('10');
    expect(versions.available['12']).toBe('stable');
    for (let v = 1; v <= 11; v++) expect(versions.available[String(v)]).toBe('stable');
  });

  it('creates a room whose id is the hash of its create event, which has no room_id', async () => {
    const { room_id: roomId } = await aliceClient.createRoom({ room_version: '12', preset: 'public_chat' as never, name: 'Twelve' });
    expect(roomId).toMatch(V12_ROOM_ID);
    const create = await stateEvent(alice, roomId, 'm.room.create');
    expect(create.event_id).toBe('$' + roomId.slice(1));
    expect(create.room_id).toBe(roomId);
    expect(create.sender).toBe(alice.userId);
    expect(create.content).toEqual({ room_version: '12' });

    // The default power levels leave the creator out (her level is infinite) and keep upgrades for creators.
    const pl = await stateEvent(alice, roomId, 'm.room.power_levels');
    expect(pl.content.users).toEqual({});
    expect(pl.content.events['m.room.tombstone']).toBe(150);

    // Everything else works as in any room: joins, messages, state.
    await bobClient.joinRoom(roomId);
    const { event_id: msg } = await bobClient.sendTextMessage(roomId, 'hello v12');
    const fetched = await api(alice, 'GET', `/rooms/${enc(roomId)}/event/${enc(msg)}`);
    expect(fetched.status).toBe(200);
    expect(fetched.body.content.body).toBe('hello v12');
    const messages = await api(alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    expect(messages.status).toBe(200);
    const types = messages.body.chunk.map((e: Json) => e.type);
    expect(types).toContain('m.room.create');
    expect(messages.body.chunk.find((e: Json) => e.type === 'm.room.create').room_id).toBe(roomId);
  });

  it('gives the creator infinite power, which power levels cannot list or take away', async () => {
    const { room_id: roomId } = await aliceClient.createRoom({ room_version: '12', preset: 'public_chat' as never });
    await bobClient.joinRoom(roomId);
    const pl = (await stateEvent(alice, roomId, 'm.room.power_levels')).content;

    // Listing the creator is refused by the auth rules.
    const listed = await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...pl, users: { [alice.userId]: 100 } });
    expect(listed.status).toBe(403);

    // The creator can raise bob to any level (her own is infinite) and bob, at 9000, still cannot touch her.
    const raised = await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...pl, users: { [bob.userId]: 9000 } });
    expect(raised.status).toBe(200);
    const kick = await api(bob, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: alice.userId });
    expect(kick.status).toBe(403);
    const aliceKicksBob = await api(alice, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId });
    expect(aliceKicksBob.status).toBe(200);
  });

  it('makes additional_creators and trusted_private_chat invitees creators, none of them in power_levels', async () => {
    const { room_id: roomId } = await aliceClient.createRoom({
      room_version: '12',
      preset: 'trusted_private_chat' as never,
      invite: [bob.userId],
      creation_content: { additional_creators: [carol.userId] },
    });
    const create = await stateEvent(alice, roomId, 'm.room.create');
    expect(new Set(create.content.additional_creators)).toEqual(new Set([carol.userId, bob.userId]));
    const pl = await stateEvent(alice, roomId, 'm.room.power_levels');
    expect(pl.content.users).toEqual({});
    // bob (invited, a creator) joins and may do what only creators may: send a tombstone-level event.
    await bobClient.joinRoom(roomId);
    const res = await api(bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...pl.content, users: { [carol.userId]: 5 } });
    expect(res.status).toBe(403); // carol is a creator: she cannot be listed either
    const ok = await api(bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...pl.content, ban: 120 });
    expect(ok.status).toBe(200);
  });

  it('refuses creation requests that list a creator in the power levels or bad additional_creators', async () => {
    const listed = await api(alice, 'POST', '/createRoom', {
      room_version: '12',
      power_level_content_override: { users: { [alice.userId]: 100 } },
    });
    expect(listed.status).toBe(400);
    expect(listed.body.errcode).toBe('M_INVALID_PARAM');
    const bad = await api(alice, 'POST', '/createRoom', { room_version: '12', creation_content: { additional_creators: ['not-a-user'] } });
    expect(bad.status).toBe(400);
    // Before v12 the same override is fine.
    const v11 = await api(alice, 'POST', '/createRoom', { room_version: '11', power_level_content_override: { users: { [alice.userId]: 100 } } });
    expect(v11.status).toBe(200);
  });

  it('upgrades a v10 room to v12 and a v12 room to v12', async () => {
    const { room_id: oldRoom } = await aliceClient.createRoom({ room_version: '10', preset: 'public_chat' as never, name: 'Old' });
    await bobClient.joinRoom(oldRoom);
    const oldPl = (await stateEvent(alice, oldRoom, 'm.room.power_levels')).content;
    await aliceClient.sendStateEvent(oldRoom, 'm.room.power_levels' as never, { ...oldPl, users: { ...oldPl.users, [bob.userId]: 50 } } as never, '');

    const { replacement_room: newRoom } = await aliceClient.upgradeRoom(oldRoom, '12');
    expect(newRoom).toMatch(V12_ROOM_ID);
    const tombstone = await stateEvent(alice, oldRoom, 'm.room.tombstone');
    expect(tombstone.content.replacement_room).toBe(newRoom);
    const create = await stateEvent(alice, newRoom, 'm.room.create');
    expect(create.event_id).toBe('$' + newRoom.slice(1));
    expect(create.content.room_version).toBe('12');
    expect(create.content.predecessor).toEqual({ room_id: oldRoom });
    const pl = (await stateEvent(alice, newRoom, 'm.room.power_levels')).content;
    expect(pl.users).toEqual({ [bob.userId]: 50 });
    expect((await stateEvent(alice, newRoom, 'm.room.name')).content.name).toBe('Old');

    await bobClient.joinRoom(newRoom);
    await bobClient.sendTextMessage(newRoom, 'moved');

    const { replacement_room: newer } = await aliceClient.upgradeRoom(newRoom, '12');
    expect(newer).toMatch(V12_ROOM_ID);
    expect((await stateEvent(alice, newer, 'm.room.create')).content.predecessor).toEqual({ room_id: newRoom });
    expect((await stateEvent(alice, newer, 'm.room.power_levels')).content.users).toEqual({ [bob.userId]: 50 });
    // bob (level 50) may not upgrade: m.room.tombstone needs 150 in v12 rooms created here, and 100 in copied ones.
    await bobClient.joinRoom(newer);
    const refused = await api(bob, 'POST', `/rooms/${enc(newer)}/upgrade`, { new_version: '12' });
    expect(refused.status).toBe(403);
  });

  it('downgrading a v12 room keeps its creator at the top level', async () => {
    const { room_id: roomId } = await aliceClient.createRoom({ room_version: '12' });
    const { replacement_room: v11 } = await aliceClient.upgradeRoom(roomId, '11');
    const pl = (await stateEvent(alice, v11, 'm.room.power_levels')).content;
    expect(pl.users[alice.userId]).toBeGreaterThanOrEqual(150);
    await aliceClient.sendTextMessage(v11, 'still here');
  });
});
