import { RoomEvent, type MatrixClient, type Room } from 'matrix-js-sdk';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';
import { enc, eventually, joinedMembers, membershipOf, messageBodies, send, startFleet, sync, type Fleet } from './helpers.js';

// Invites, rejections and knocks between two Skjól servers over HTTPS on loopback:
//   A localhost:<port>  — alice, carol, dave (invited / knocking)
//   B 127.0.0.1:<port>  — bob, who owns the rooms
describe.each(testDialects())('inviting users of another server, rejecting, knocking, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser, carol: TestUser, dave: TestUser;
  let aliceClient: MatrixClient | undefined;
  let roomId: string;

  beforeAll(async () => {
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1']);
    [A, B] = fleet.servers as [TestServer, TestServer];
    [alice, carol, dave] = (await Promise.all(['alice', 'carol', 'dave'].map((u) => registerUser(A.baseUrl, u)))) as [TestUser, TestUser, TestUser];
    bob = await registerUser(B.baseUrl, 'bob');
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'private_chat', name: 'Secret', topic: 'shh' } });
    roomId = created.body.room_id;
  }, 60_000);

  afterAll(async () => {
    aliceClient?.stopClient();
    await fleet?.close();
  });

  it('bob invites alice of A: A countersigns, alice sees the invite in /sync (matrix-js-sdk) and joins', async () => {
    aliceClient = sdkClient(A.baseUrl, alice);
    const invited = new Promise<Room>((resolve) => {
      aliceClient!.on(RoomEvent.MyMembership, (room, membership) => {
        if (room.roomId === roomId && membership === 'invite') resolve(room);
      });
    });
    await aliceClient.startClient({ initialSyncLimit: 5 });

    const res = await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { token: bob.accessToken, body: { user_id: alice.userId } });
    expect(res.status).toBe(200);
    expect(await membershipOf(B, bob, roomId, alice.userId)).toBe('invite');
    // The invite appended on B carries both servers' signatures.
    const stored = await B.hs.services.db.knex('events').where({ room_id: roomId, type: 'm.room.member', state_key: alice.userId }).first();
    expect(Object.keys(JSON.parse(stored.json).signatures).sort()).toEqual([A.serverName, B.serverName].sort());

    const room = await invited;
    expect(room.name).toBe('Secret');
    // Raw /sync: the stripped state sent with the invite.
    const body = await sync(A, alice);
    const state = body.rooms.invite[roomId].invite_state.events as Array<{ type: string; state_key: string; content: Record<string, unknown> }>;
    expect(state.find((e) => e.type === 'm.room.name')?.content.name).toBe('Secret');
    expect(state.find((e) => e.type === 'm.room.member' && e.state_key === alice.userId)?.content.membership).toBe('invite');

    // Joining a room A does not have goes through the inviting server.
    await aliceClient.joinRoom(roomId);
    expect(await joinedMembers(B, bob, roomId)).toEqual([alice.userId, bob.userId].sort());
    expect(await joinedMembers(A, alice, roomId)).toEqual([alice.userId, bob.userId].sort());
    await send(A, alice, roomId, 'thanks for the invite');
    await eventually(async () => (await messageBodies(B, bob, roomId)).includes('thanks for the invite'), 'alice message on B');
    await send(B, bob, roomId, 'welcome');
    await eventually(async () => (await messageBodies(A, alice, roomId)).includes('welcome'), 'bob message on A');
  });

  it('carol rejects an invite to a room A does not have: make_leave / send_leave through B, gone from her /sync', async () => {
    const other = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'private_chat', name: 'Elsewhere' } });
    const otherId = other.body.room_id as string;
    const before = await sync(A, carol);
    const res = await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(otherId)}/invite`, { token: bob.accessToken, body: { user_id: carol.userId } });
    expect(res.status).toBe(200);
    const withInvite = await eventually(async () => {
      const s = await sync(A, carol, before.next_batch);
      return s.rooms?.invite?.[otherId] ? s : undefined;
    }, 'carol sees the invite');
    expect(await A.hs.services.db.knex('rooms').where({ room_id: otherId }).first()).toBeUndefined();

    const leave = await request(A.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(otherId)}/leave`, { token: carol.accessToken, body: { reason: 'no thanks' } });
    expect(leave.status).toBe(200);
    expect(await membershipOf(B, bob, otherId, carol.userId)).toBe('leave');
    const after = await sync(A, carol, withInvite.next_batch);
    expect(after.rooms?.invite?.[otherId]).toBeUndefined();
    expect(Object.keys(after.rooms?.leave ?? {})).toContain(otherId);
    expect((await sync(A, carol)).rooms?.invite?.[otherId]).toBeUndefined();
    // Leaving again: nothing to leave.
    const again = await request(A.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(otherId)}/leave`, { token: carol.accessToken, body: {} });
    expect(again.status).toBe(404);
  });

  it('carol rejects an invite to a room A is in: the ordinary leave, sent by the outbox', async () => {
    const res = await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { token: bob.accessToken, body: { user_id: carol.userId } });
    expect(res.status).toBe(200);
    await eventually(async () => (await membershipOf(A, alice, roomId, carol.userId)) === 'invite', 'the invite reaches A through /send');
    expect((await sync(A, carol)).rooms.invite[roomId]).toBeDefined();
    const leave = await request(A.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/leave`, { token: carol.accessToken, body: {} });
    expect(leave.status).toBe(200);
    await eventually(async () => (await membershipOf(B, bob, roomId, carol.userId)) === 'leave', 'the rejection on B');
  });

  it('refuses invites the invitee server does not vouch for', async () => {
    // A room A has nobody in: A would have to store an invite for an account it does not have.
    const other = (await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'private_chat' } })).body.room_id as string;
    const res = await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(other)}/invite`, { token: bob.accessToken, body: { user_id: `@nobody:${A.serverName}` } });
    expect(res).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
    expect(await membershipOf(B, bob, other, `@nobody:${A.serverName}`)).toBeUndefined();
  });

  it('dave knocks on a room of B (make_knock / send_knock), is invited and joins', async () => {
    const knockRoom = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', {
      token: bob.accessToken,
      body: { preset: 'private_chat', name: 'Knock knock', room_version: '10', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] },
    });
    const knockRoomId = knockRoom.body.room_id as string;
    const res = await request(A.baseUrl, 'POST', `/_matrix/client/v3/knock/${enc(knockRoomId)}?server_name=${enc(B.serverName)}`, { token: dave.accessToken, body: { reason: 'let me in' } });
    expect(res).toMatchObject({ status: 200, body: { room_id: knockRoomId } });
    expect(await membershipOf(B, bob, knockRoomId, dave.userId)).toBe('knock');
    const s = await sync(A, dave);
    const knockState = s.rooms.knock[knockRoomId].knock_state.events as Array<{ type: string; content: Record<string, unknown> }>;
    expect(knockState.find((e) => e.type === 'm.room.name')?.content.name).toBe('Knock knock');

    const invite = await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(knockRoomId)}/invite`, { token: bob.accessToken, body: { user_id: dave.userId } });
    expect(invite.status).toBe(200);
    const s2 = await sync(A, dave, s.next_batch);
    expect(s2.rooms.invite[knockRoomId]).toBeDefined();
    const join = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(knockRoomId)}`, { token: dave.accessToken, body: {} });
    expect(join.status).toBe(200);
    expect(await joinedMembers(B, bob, knockRoomId)).toEqual([bob.userId, dave.userId].sort());
  });

  it.each(['1', '3', '11'])('invites and joins work in a room of version %s', async (version) => {
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'private_chat', room_version: version } });
    const id = created.body.room_id as string;
    expect((await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(id)}/invite`, { token: bob.accessToken, body: { user_id: alice.userId } })).status).toBe(200);
    expect((await sync(A, alice)).rooms.invite[id]).toBeDefined();
    expect((await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(id)}`, { token: alice.accessToken, body: {} })).status).toBe(200);
    expect(await joinedMembers(A, alice, id)).toEqual([alice.userId, bob.userId].sort());
  });

  it('knocking on a room whose join rule does not allow it is refused by the resident server', async () => {
    const res = await request(A.baseUrl, 'POST', `/_matrix/client/v3/knock/${enc(roomId)}`, { token: dave.accessToken, body: {} });
    expect(res).toMatchObject({ status: 403, body: { errcode: 'M_FORBIDDEN' } });
  });

  it('an invite from another server is pushed to the invitee, named from the stripped state (as Synapse)', async () => {
    const erin = await registerUser(A.baseUrl, 'erin');
    const pushes: any[] = [];
    const gateway = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        pushes.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/_matrix/push/v1/notify`;
      const pusher = { kind: 'http', app_id: 'test', pushkey: 'erin-key', app_display_name: 'T', device_display_name: 'D', lang: 'en', data: { url } };
      expect((await request(A.baseUrl, 'POST', '/_matrix/client/v3/pushers/set', { token: erin.accessToken, body: pusher })).status).toBe(200);
      const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'private_chat', name: 'Pushy' } });
      const pushyId = created.body.room_id as string;
      expect((await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(pushyId)}/invite`, { token: bob.accessToken, body: { user_id: erin.userId } })).status).toBe(200);

      const push = await eventually(async () => pushes.find((p) => p.notification?.type === 'm.room.member'), 'the invite push');
      expect(push.notification).toMatchObject({ room_id: pushyId, sender: bob.userId, membership: 'invite', user_is_target: true, room_name: 'Pushy' });
      expect(push.notification.devices[0].pushkey).toBe('erin-key');
      // And it is listed in GET /notifications, though A has no copy of the room.
      const listed = await request(A.baseUrl, 'GET', '/_matrix/client/v3/notifications', { token: erin.accessToken });
      expect(listed.status).toBe(200);
      expect(listed.body.notifications.map((n: any) => n.room_id)).toEqual([pushyId]);
    } finally {
      gateway.closeAllConnections();
      await new Promise<void>((r) => gateway.close(() => r()));
    }
  });
});
