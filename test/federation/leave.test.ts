import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { enc, eventually, membershipOf, startFleet, sync, type Fleet } from './helpers.js';

// Leaving rooms that live on another server.
//   A localhost:<port>  — alice, dave, erin
//   B 127.0.0.1:<port>  — bob, who owns the rooms
describe.each(testDialects())('leaving rooms on another server on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser, dave: TestUser, erin: TestUser;

  beforeAll(async () => {
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1']);
    [A, B] = fleet.servers as [TestServer, TestServer];
    [alice, dave, erin] = (await Promise.all(['alice', 'dave', 'erin'].map((u) => registerUser(A.baseUrl, u)))) as [TestUser, TestUser, TestUser];
    bob = await registerUser(B.baseUrl, 'bob');
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  const createRoom = async (body: Record<string, unknown>) =>
    (await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body })).body.room_id as string;

  it('a joined user leaving a room whose other members are remote: the ordinary leave, sent by the outbox', async () => {
    const roomId = await createRoom({ preset: 'public_chat' });
    expect((await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} })).status).toBe(200);
    expect((await request(A.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/leave`, { token: alice.accessToken, body: {} })).status).toBe(200);
    await eventually(async () => (await membershipOf(B, bob, roomId, alice.userId)) === 'leave', 'the leave on B');
  });

  it('a knock is taken back with make_leave / send_leave through the server it was made through', async () => {
    const roomId = await createRoom({ preset: 'private_chat', room_version: '9', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
    const knock = await request(A.baseUrl, 'POST', `/_matrix/client/v3/knock/${enc(roomId)}`, { token: dave.accessToken, body: {} });
    expect(knock.status).toBe(200);
    expect(await membershipOf(B, bob, roomId, dave.userId)).toBe('knock');
    const s = await sync(A, dave);
    expect(s.rooms.knock[roomId]).toBeDefined();
    expect((await request(A.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/leave`, { token: dave.accessToken, body: {} })).status).toBe(200);
    expect(await membershipOf(B, bob, roomId, dave.userId)).toBe('leave');
    const after = await sync(A, dave, s.next_batch);
    expect(after.rooms?.knock?.[roomId]).toBeUndefined();
  });

  it('make_leave / send_leave refuse users of other servers and rooms nobody knows', async () => {
    const roomId = await createRoom({ preset: 'public_chat' });
    const client = A.hs.services.federation.client;
    await expect(client.get(B.serverName, `/_matrix/federation/v1/make_leave/${enc(roomId)}/${enc(bob.userId)}`)).rejects.toMatchObject({ remoteStatus: 403 });
    await expect(client.get(B.serverName, `/_matrix/federation/v1/make_leave/${enc(`!nope:${B.serverName}`)}/${enc(erin.userId)}`)).rejects.toMatchObject({ remoteStatus: 404 });
    // Leaving a room one was never in is refused by the auth rules (the template cannot be built).
    await expect(client.get(B.serverName, `/_matrix/federation/v1/make_leave/${enc(roomId)}/${enc(erin.userId)}`)).rejects.toMatchObject({ remoteStatus: 403 });
  });

  it('an invite from a server that has gone away is still rejected, locally', async () => {
    const roomId = await createRoom({ preset: 'private_chat' });
    expect((await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { token: bob.accessToken, body: { user_id: erin.userId } })).status).toBe(200);
    const s = await sync(A, erin);
    expect(s.rooms.invite[roomId]).toBeDefined();
    await B.stop();
    try {
      const leave = await request(A.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/leave`, { token: erin.accessToken, body: {} });
      expect(leave.status).toBe(200);
      const after = await sync(A, erin, s.next_batch);
      expect(after.rooms?.invite?.[roomId]).toBeUndefined();
      // The rejection shows in the leave section with erin's own leave event, as on Synapse.
      const left = after.rooms.leave[roomId].timeline.events as Array<{ type: string; state_key: string; sender: string; content: { membership: string } }>;
      expect(left.at(-1)).toMatchObject({ type: 'm.room.member', state_key: erin.userId, sender: erin.userId, content: { membership: 'leave' } });
      expect((await sync(A, erin)).rooms?.invite?.[roomId]).toBeUndefined();
    } finally {
      fleet.servers[1] = B = await B.restart();
    }
  });
});
