import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, joinedMembers, membershipOf, messageBodies, send, startPair, sync, type Fleet } from './helpers.js';

// Element's "Start chat" with a user of another server: one createRoom with is_direct and invite:[remote].
//   A localhost:<port>  — alice, who starts the chat
//   B 127.0.0.1:<port>  — bob, the invitee
describe.each(testDialects())('a direct chat with a user of another server, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it('createRoom with invite:[@bob:B] reaches bob: he sees the direct invite in /sync, joins, and they talk', async () => {
    const before = await sync(B, bob);
    const created = await api(A, alice, 'POST', '/createRoom', {
      preset: 'trusted_private_chat',
      is_direct: true,
      invite: [bob.userId],
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    expect(await membershipOf(A, alice, roomId, bob.userId)).toBe('invite');

    const invited = await eventually(async () => (await sync(B, bob, before.next_batch)).rooms?.invite?.[roomId], 'the invite in bob’s /sync');
    const state = invited.invite_state.events as Array<{ type: string; state_key: string; sender: string; content: Record<string, unknown> }>;
    const own = state.find((e) => e.type === 'm.room.member' && e.state_key === bob.userId);
    expect(own).toMatchObject({ sender: alice.userId, content: { membership: 'invite', is_direct: true } });
    expect(state.find((e) => e.type === 'm.room.encryption')?.content.algorithm).toBe('m.megolm.v1.aes-sha2');

    const join = await request(B.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.accessToken, body: {} });
    expect(join).toMatchObject({ status: 200, body: { room_id: roomId } });
    expect(await joinedMembers(A, alice, roomId)).toEqual([alice.userId, bob.userId].sort());
    expect(await joinedMembers(B, bob, roomId)).toEqual([alice.userId, bob.userId].sort());

    await send(A, alice, roomId, 'hello bob');
    await eventually(async () => (await messageBodies(B, bob, roomId)).includes('hello bob'), 'alice’s message on B');
    await send(B, bob, roomId, 'hi alice');
    await eventually(async () => (await messageBodies(A, alice, roomId)).includes('hi alice'), 'bob’s message on A');
  });

  it('an invite the remote server refuses fails the request, as in Synapse, and the room stays', async () => {
    const nobody = `@nobody:${B.serverName}`;
    const rooms = async () => (await api(A, alice, 'GET', '/joined_rooms')).body.joined_rooms as string[];
    const before = await rooms();
    const res = await api(A, alice, 'POST', '/createRoom', { preset: 'trusted_private_chat', is_direct: true, invite: [nobody] });
    expect(res).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
    const [roomId] = (await rooms()).filter((r) => !before.includes(r));
    expect(roomId).toBeDefined();
    expect(await membershipOf(A, alice, roomId!, nobody)).toBeUndefined();
  });
});
