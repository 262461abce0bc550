import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { enc, messageBodies, send, startFleet, sync, type Fleet } from './helpers.js';

// History from before a user of another server joined: /messages on the joining server runs out of local
// events and backfills from the room's server (GET /backfill, GET /state at the edge).
//   A localhost:<port>  — alice, who joins late
//   B 127.0.0.1:<port>  — bob, who owns the rooms
//   C localhost:<port>  — in no room
describe.each(testDialects())('backfilling history over federation on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer, C: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;
  const early = Array.from({ length: 30 }, (_, i) => `early ${i}`);

  beforeAll(async () => {
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1', 'localhost']);
    [A, B, C] = fleet.servers as [TestServer, TestServer, TestServer];
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat', name: 'History' } });
    roomId = created.body.room_id;
    for (const [i, body] of early.entries()) {
      await send(B, bob, roomId, body);
      if (i === 10) await request(B.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { token: bob.accessToken, body: { topic: 'midway' } });
    }
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it('the late joiner pages back through history sent before it joined (shared history)', async () => {
    const join = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} });
    expect(join.status).toBe(200);
    const afterJoin = await sync(A, alice);
    await send(B, bob, roomId, 'after the join');
    const bodies = await (async () => {
      for (let i = 0; i < 100; i++) {
        const b = await messageBodies(A, alice, roomId, 7);
        if (b.includes('after the join')) return b;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('message after the join never arrived');
    })();
    expect(bodies).toEqual([...early, 'after the join']);
    // The topic change from the middle of history is in the backfilled timeline, in place.
    const page = await request(A.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=100`, { token: alice.accessToken });
    const types = (page.body.chunk as Array<{ type: string; content: { body?: string } }>).reverse();
    const topicAt = types.findIndex((e) => e.type === 'm.room.topic');
    expect(types[topicAt - 1]?.content.body).toBe('early 10');
    expect(types.some((e) => e.type === 'm.room.create')).toBe(true);
    // Backfilled events are history, not news: an incremental /sync does not deliver them.
    const incremental = await sync(A, alice, afterJoin.next_batch);
    const timeline = (incremental.rooms?.join?.[roomId]?.timeline?.events ?? []) as Array<{ content: { body?: string } }>;
    expect(timeline.map((e) => e.content.body).filter((b) => b?.startsWith('early'))).toEqual([]);
    // Current state on A did not move back in time.
    const topic = await request(A.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { token: alice.accessToken });
    expect(topic.body).toEqual({ topic: 'midway' });
  });

  it('history a server may not see is served redacted, and the joiner sees none of it', async () => {
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', {
      token: bob.accessToken,
      body: { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }] },
    });
    const privateId = created.body.room_id as string;
    const secret = await send(B, bob, privateId, 'before you came');
    const join = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(privateId)}`, { token: alice.accessToken, body: {} });
    expect(join.status).toBe(200);
    expect(await messageBodies(A, alice, privateId)).toEqual([]);
    const stored = await A.hs.services.db.knex('events').where({ event_id: secret }).first();
    // A asked B for it while paging back: B served it redacted.
    expect(JSON.parse(stored.json).content).toEqual({});
  });

  it('asks for a full page (100, as Synapse), so history comes back even from a server that will not serve /state', async () => {
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat' } });
    const quietId = created.body.room_id as string;
    const bodies = Array.from({ length: 12 }, (_, i) => `quiet ${i}`);
    for (const body of bodies) await send(B, bob, quietId, body);
    const join = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(quietId)}`, { token: alice.accessToken, body: {} });
    expect(join.status).toBe(200);
    const client = A.hs.services.federation.client;
    const real = client.request.bind(client);
    const limits: string[] = [];
    client.request = (async (req: Parameters<typeof real>[0]) => {
      if (req.path.startsWith('/_matrix/federation/v1/state/')) throw new Error('no state served here');
      if (req.path.startsWith('/_matrix/federation/v1/backfill/')) limits.push(String(req.query?.limit));
      return real(req);
    }) as typeof client.request;
    try {
      expect(await messageBodies(A, alice, quietId, 5)).toEqual(bodies);
    } finally {
      client.request = real as typeof client.request;
    }
    expect(limits[0]).toBe('100');
  });

  it('serves /backfill only to servers in the room', async () => {
    const latest = await B.hs.services.db.knex('events').where({ room_id: roomId, outlier: false }).orderBy('stream_ordering', 'desc').first();
    const ok = await A.hs.services.federation.client.get<{ pdus: Array<{ depth: number }> }>(B.serverName, `/_matrix/federation/v1/backfill/${enc(roomId)}`, { v: [latest.event_id], limit: '5' });
    expect(ok.pdus).toHaveLength(5);
    await expect(
      C.hs.services.federation.client.get(B.serverName, `/_matrix/federation/v1/backfill/${enc(roomId)}`, { v: [latest.event_id], limit: '5' }),
    ).rejects.toMatchObject({ remoteStatus: 403 });
  });
});
