import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { api, enc, eventually, membershipOf, messageBodies, send, startPair, type Fleet } from './helpers.js';

// Rejoining a room this server has left: the join must be built by a server still in the room.
//   A localhost:<port>  — alice (the only user of A in the rooms)
//   B 127.0.0.1:<port>  — bob, who owns the rooms
describe.each(testDialects())('rejoining a room the server has left on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  const joinedRooms = async () => (await api(A, alice, 'GET', '/joined_rooms')).body.joined_rooms as string[];

  /** A public room on B that alice joined and left: A keeps its events but has no member in it. */
  async function roomAliceLeft(): Promise<string> {
    const roomId = (await api(B, bob, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id as string;
    expect((await api(A, alice, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    await eventually(async () => (await membershipOf(B, bob, roomId, alice.userId)) === 'join', 'alice joined on B');
    expect((await api(A, alice, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    await eventually(async () => (await membershipOf(B, bob, roomId, alice.userId)) === 'leave', 'alice left on B');
    return roomId;
  }

  it('a room made invite-only while A was out: the join is refused with 403 and alice is not shown joined', async () => {
    const roomId = await roomAliceLeft();
    expect((await api(B, bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.join_rules/`, { join_rule: 'invite' })).status).toBe(200);
    const join = await api(A, alice, 'POST', `/join/${enc(roomId)}`, {});
    expect(join.status).toBe(403);
    expect(join.body.errcode).toBe('M_FORBIDDEN');
    expect(await joinedRooms()).not.toContain(roomId);
    expect(await membershipOf(B, bob, roomId, alice.userId)).toBe('leave');
  });

  it('a user banned while A was out cannot rejoin (either join endpoint)', async () => {
    const roomId = await roomAliceLeft();
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/ban`, { user_id: alice.userId })).status).toBe(200);
    for (const path of [`/join/${enc(roomId)}`, `/rooms/${enc(roomId)}/join`]) {
      const join = await api(A, alice, 'POST', path, {});
      expect(join.status).toBe(403);
    }
    expect(await joinedRooms()).not.toContain(roomId);
    expect(await membershipOf(B, bob, roomId, alice.userId)).toBe('ban');
  });

  it('a room that stayed public: alice rejoins through B, sees what changed meanwhile, and messages flow both ways', async () => {
    const roomId = await roomAliceLeft();
    expect((await api(B, bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'changed while A was away' })).status).toBe(200);
    await send(B, bob, roomId, 'said while A was away');

    expect((await api(A, alice, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect(await joinedRooms()).toContain(roomId);
    expect(await membershipOf(B, bob, roomId, alice.userId)).toBe('join');
    const topic = await api(A, alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.topic/`);
    expect(topic.body.topic).toBe('changed while A was away');

    await send(A, alice, roomId, 'hello from A after rejoining');
    await eventually(async () => (await messageBodies(B, bob, roomId)).includes('hello from A after rejoining'), 'alice’s message on B');
    await send(B, bob, roomId, 'hello from B');
    await eventually(async () => (await messageBodies(A, alice, roomId)).includes('hello from B'), 'bob’s message on A');
  });

  it('invited again after A left: the invite shows in /sync, alice joins through B, and a rejected one reaches B', async () => {
    const inviteIn = async (roomId: string) =>
      (await request(A.baseUrl, 'GET', '/_matrix/client/v3/sync?timeout=0', { token: alice.accessToken })).body.rooms?.invite?.[roomId];
    const roomId = await roomAliceLeft();
    expect((await api(B, bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.join_rules/`, { join_rule: 'invite' })).status).toBe(200);
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: alice.userId })).status).toBe(200);
    const invite = await eventually(() => inviteIn(roomId), 'the invite in alice’s /sync');
    const member = (invite.invite_state.events as any[]).find((e) => e.type === 'm.room.member' && e.state_key === alice.userId);
    expect(member).toMatchObject({ sender: bob.userId, content: { membership: 'invite' } });
    expect((await api(A, alice, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect(await joinedRooms()).toContain(roomId);
    expect(await membershipOf(B, bob, roomId, alice.userId)).toBe('join');
    await send(A, alice, roomId, 'back in by invite');
    await eventually(async () => (await messageBodies(B, bob, roomId)).includes('back in by invite'), 'alice’s message on B');

    // Left again and invited again: rejecting the invite is a leave B receives, not one kept on A.
    expect((await api(A, alice, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    await eventually(async () => (await membershipOf(B, bob, roomId, alice.userId)) === 'leave', 'alice left on B');
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: alice.userId })).status).toBe(200);
    await eventually(() => inviteIn(roomId), 'the second invite in alice’s /sync');
    expect((await api(A, alice, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    expect(await membershipOf(B, bob, roomId, alice.userId)).toBe('leave');
    expect(await inviteIn(roomId)).toBeUndefined();
  });

  it('a restricted room on B: a space member on A joins through make_join, authorised by a user of B', async () => {
    const space = (await api(B, bob, 'POST', '/createRoom', { preset: 'public_chat', creation_content: { type: 'm.space' } })).body.room_id as string;
    const allow = [{ type: 'm.room_membership', room_id: space }];
    const roomId = (
      await api(B, bob, 'POST', '/createRoom', {
        preset: 'private_chat',
        room_version: '10',
        initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow } }],
      })
    ).body.room_id as string;
    // Not in the space yet: refused.
    expect((await api(A, alice, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(403);
    expect((await api(A, alice, 'POST', `/join/${enc(space)}`, {})).status).toBe(200);
    await eventually(async () => (await membershipOf(B, bob, space, alice.userId)) === 'join', 'alice in the space on B');
    expect((await api(A, alice, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    const ev = await api(B, bob, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(alice.userId)}`);
    expect(ev.body).toMatchObject({ membership: 'join', join_authorised_via_users_server: bob.userId });
  });

  it('a restricted room where A has a member but nobody who may invite: A has B authorise the join', async () => {
    const carol = await registerUser(A.baseUrl, `carol${Date.now()}`);
    const space = (await api(B, bob, 'POST', '/createRoom', { preset: 'public_chat', creation_content: { type: 'm.space' } })).body.room_id as string;
    const roomId = (
      await api(B, bob, 'POST', '/createRoom', {
        preset: 'private_chat',
        room_version: '10',
        power_level_content_override: { invite: 50 },
        initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: space }] } }],
      })
    ).body.room_id as string;
    for (const user of [alice, carol]) {
      expect((await api(A, user, 'POST', `/join/${enc(space)}`, {})).status).toBe(200);
      await eventually(async () => (await membershipOf(B, bob, space, user.userId)) === 'join', 'space member on B');
    }
    expect((await api(A, carol, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect((await api(A, alice, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    const ev = await api(A, carol, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(alice.userId)}`);
    expect(ev.body).toMatchObject({ membership: 'join', join_authorised_via_users_server: bob.userId });
    await send(A, alice, roomId, 'in through B');
    await eventually(async () => (await messageBodies(B, bob, roomId)).includes('in through B'), 'alice’s message on B');
  });
});
