import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import type { TestUser } from '../helpers/users.js';
import { enc, eventually, messageBodies, send, startPair, type Fleet } from './helpers.js';

// A gap in the middle of a room's DAG (spec: Server-Server API, "Backfilling and retrieving missing events"):
// B lost a run of A's transactions, and /get_missing_events (10 events) did not close it. Paging back on B
// over the gap backfills the missing events from A, in place, instead of jumping over them.
//   A localhost:<port>  — alice, whose events get lost
//   B 127.0.0.1:<port>  — bob, who owns the room
describe.each(testDialects())('backfilling a gap in the middle of a room on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;
  const lost = Array.from({ length: 25 }, (_, i) => `lost ${i}`);

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
    roomId = (await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat' } })).body.room_id;
    expect((await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} })).status).toBe(200);
    await send(B, bob, roomId, 'before the gap');
    await eventually(async () => (await messageBodies(A, alice, roomId)).includes('before the gap'), 'bob message on A');

    // A's transactions to B are lost while alice talks: far more events than one /get_missing_events holds.
    const client = A.hs.services.federation.client;
    const realRequest = client.request.bind(client);
    client.request = (async (req: Parameters<typeof realRequest>[0]) => {
      if (req.method === 'PUT' && req.path.startsWith('/_matrix/federation/v1/send/')) throw new Error('lost on the way');
      return realRequest(req);
    }) as typeof client.request;
    try {
      for (const body of lost) await send(A, alice, roomId, body);
      await A.hs.services.db.knex('federation_outbox').where({ destination: B.serverName }).delete();
      await A.hs.services.db.knex('federation_destinations').where({ destination: B.serverName }).update({ pending_txn_id: null, retry_count: 0, next_attempt_ts: 0 });
    } finally {
      client.request = realRequest as typeof client.request;
    }
    const last = await send(A, alice, roomId, 'after the gap');
    await eventually(async () => {
      const r = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(last)}`, { token: bob.accessToken });
      return r.status === 200 ? true : undefined;
    }, 'the event after the gap on B');
  }, 90_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it('bob pages back over the gap and reads every message alice sent, in order', async () => {
    // Small pages, as a client scrolling back: the gap is met in the middle of the room, not at its start.
    expect(await messageBodies(B, bob, roomId, 5)).toEqual(['before the gap', ...lost, 'after the gap']);
  });
});
