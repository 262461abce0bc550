import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { enc, eventually, messageBodies, send, startFleet, type Fleet } from './helpers.js';

// Message retention with another server in the room:
//   A localhost:<port>  — alice; purges the room's messages after its max_lifetime (1 s)
//   B 127.0.0.1:<port>  — bob, who owns the room; its retention is switched off, so it keeps and shows everything
describe.each(testDialects())('message retention over federation on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;

  beforeAll(async () => {
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1'], { retention: { enabled: true, purge_jobs: [{ interval: '200ms' }] } });
    [A, B] = fleet.servers as [TestServer, TestServer];
    // B acts as a server without retention: no purge jobs, nothing hidden from its readers.
    await B.hs.services.retention.stop();
    B.hs.services.rooms.reader.setRetentionFloor(async () => null);
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', {
      token: bob.accessToken,
      body: { preset: 'public_chat' },
    });
    roomId = created.body.room_id;
    await send(B, bob, roomId, 'before the join');
    expect((await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} })).status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it('old messages stay purged on the purging server: paging back does not backfill them again', async () => {
    for (let i = 0; i < 5; i++) await send(B, bob, roomId, `old ${i}`);
    await send(B, bob, roomId, 'last');
    await eventually(async () => (await messageBodies(A, alice, roomId)).includes('last'), 'the messages to reach A');
    // Only now a policy: A's next purge run removes everything older than a second.
    const policy = await request(B.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.retention/`, { token: bob.accessToken, body: { max_lifetime: 1000 } });
    expect(policy.status).toBe(200);
    // Each /messages call runs out of local history and asks B, which still has it all.
    await eventually(async () => !(await messageBodies(A, alice, roomId)).some((b) => b.startsWith('old') || b === 'before the join'), 'A to purge');
    // Readers stop seeing expired messages before the purge run has finished deleting them: wait for the run.
    const storedBodies = async () =>
      ((await A.hs.services.db.knex('events').where({ room_id: roomId, type: 'm.room.message' })) as Array<{ json: string }>)
        .map((r) => JSON.parse(r.json).content.body)
        .filter((b) => typeof b === 'string' && b !== 'last');
    await eventually(async () => (await storedBodies()).length === 0, 'A to finish the purge run');
    for (let i = 0; i < 3; i++) expect((await messageBodies(A, alice, roomId, 3)).filter((b) => typeof b === 'string' && b !== 'last')).toEqual([]);
    // Not merely hidden: paging back did not store them again.
    expect(await storedBodies()).toEqual([]);
    expect(await messageBodies(B, bob, roomId)).toEqual(['before the join', 'old 0', 'old 1', 'old 2', 'old 3', 'old 4', 'last']);

    // A still serves what remains over federation, and the room goes on in both directions.
    const head = (await request(A.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1`, { token: alice.accessToken })).body.chunk[0].event_id;
    const served = await B.hs.services.federation.client.request<{ pdus: Array<{ type: string; content: { body?: string } }> }>({
      destination: A.serverName,
      method: 'GET',
      path: `/_matrix/federation/v1/backfill/${enc(roomId)}`,
      query: { v: [head], limit: '50' },
    });
    expect(served.pdus.length).toBeGreaterThan(0);
    expect(served.pdus.map((p) => p.content.body).filter((b) => b?.startsWith('old'))).toEqual([]);
    await send(A, alice, roomId, 'from A after the purge');
    await eventually(async () => (await messageBodies(B, bob, roomId)).includes('from A after the purge'), 'B to receive A’s message');
  }, 60_000);
});
