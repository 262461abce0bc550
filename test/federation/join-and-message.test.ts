import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientEvent, EventType, RoomEvent, SyncState, type MatrixClient, type MatrixEvent, type Room } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederationRequestError } from '../../src/federation/client.js';
import { freePort, startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { assertSpecShaped } from '../helpers/specSchema.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';
import { createTestCa, issueCert } from './tls.js';

function waitFor<T>(setup: (resolve: (v: T) => void) => () => void, ms = 20_000, what = 'condition'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cleanup: () => void = () => {};
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
    cleanup = setup((v) => {
      clearTimeout(timer);
      cleanup();
      resolve(v);
    });
  });
}

async function eventually<T>(probe: () => Promise<T | undefined>, what: string, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function startSynced(client: MatrixClient): Promise<void> {
  const prepared = waitFor<void>((resolve) => {
    const on = (state: SyncState) => {
      if (state === SyncState.Prepared) resolve();
    };
    client.on(ClientEvent.Sync, on);
    return () => client.off(ClientEvent.Sync, on);
  }, 20_000, 'initial sync');
  await client.startClient({ initialSyncLimit: 10 });
  await prepared;
}

function nextMessage(client: MatrixClient, roomId: string, body: string): Promise<MatrixEvent> {
  return waitFor<MatrixEvent>((resolve) => {
    const on = (e: MatrixEvent, room: Room | undefined) => {
      if (room?.roomId === roomId && e.getType() === EventType.RoomMessage && e.getContent().body === body) resolve(e);
    };
    client.on(RoomEvent.Timeline, on);
    return () => client.off(RoomEvent.Timeline, on);
  }, 20_000, `message "${body}"`);
}

async function messageBodies(server: TestServer, user: TestUser, roomId: string): Promise<string[]> {
  const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=100`, { token: user.accessToken });
  if (res.status !== 200) return [];
  return res.body.chunk.filter((e: { type: string }) => e.type === 'm.room.message').map((e: { content: { body: string } }) => e.content.body);
}

async function joinedMembers(server: TestServer, user: TestUser, roomId: string): Promise<string[]> {
  const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`, { token: user.accessToken });
  expect(res.status).toBe(200);
  return Object.keys(res.body.joined).sort();
}

/** Every federation response the server receives is checked against the spec's server-server schemas. */
function specChecked(server: TestServer): TestServer {
  const client = server.hs.services.federation.client;
  const request = client.request.bind(client);
  client.request = (async (req: Parameters<typeof request>[0]) => {
    const res = await request(req);
    if (req.signed !== false) assertSpecShaped(req.method, req.path, 200, res);
    return res;
  }) as typeof client.request;
  return server;
}

async function destinationState(server: TestServer, destination: string): Promise<{ retry_count: number; pending_txn_id: string | null } | undefined> {
  return server.hs.services.db.knex('federation_destinations').where({ destination }).first();
}

// Two Skjól servers on loopback over real HTTPS, each with its own name and certificate; certificate checks
// stay on (both trust the test CA through federation_custom_ca_list):
//   A localhost:<port>  — alice
//   B 127.0.0.1:<port>  — bob, who owns the room and its alias
//   C localhost:<port>  — a server in no room, for the access checks
describe.each(testDialects())('joining a room on another server, and messages both ways, on %s', (dialect) => {
  let dir: string;
  let A: TestServer, B: TestServer, C: TestServer;
  let alice: TestUser, bob: TestUser;
  let aliceClient: MatrixClient | undefined, bobClient: MatrixClient | undefined;
  let roomId: string;
  let alias: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-fed-join-'));
    const ca = createTestCa(dir);
    const [pA, pB, pC] = [await freePort(), await freePort(), await freePort()];
    const config = { federation_custom_ca_list: [ca.caPath] };
    B = specChecked(await startHomeserver({ dialect, serverName: `127.0.0.1:${pB}`, tls: { ...issueCert(dir, 'b', ca), port: pB }, config }));
    A = specChecked(await startHomeserver({ dialect, serverName: `localhost:${pA}`, tls: { ...issueCert(dir, 'a', ca), port: pA }, config }));
    C = specChecked(await startHomeserver({ dialect, serverName: `localhost:${pC}`, tls: { ...issueCert(dir, 'c', ca), port: pC }, config }));
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
  }, 60_000);

  afterAll(async () => {
    aliceClient?.stopClient();
    bobClient?.stopClient();
    await Promise.all([A, B, C].filter(Boolean).map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('alice on A joins #lobby:B by alias with matrix-js-sdk (query/directory, make_join, send_join)', async () => {
    bobClient = sdkClient(B.baseUrl, bob);
    const created = await bobClient.createRoom({ name: 'Lobby', preset: 'public_chat' as never, room_alias_name: 'lobby' });
    roomId = created.room_id;
    alias = `#lobby:${B.serverName}`;

    aliceClient = sdkClient(A.baseUrl, alice);
    const room = await aliceClient.joinRoom(alias);
    expect(room.roomId).toBe(roomId);

    // Both servers agree on who is in the room.
    expect(await joinedMembers(B, bob, roomId)).toEqual([alice.userId, bob.userId].sort());
    expect(await joinedMembers(A, alice, roomId)).toEqual([alice.userId, bob.userId].sort());
    // A has the room's state from send_join.
    const name = await request(A.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.name/`, { token: alice.accessToken });
    expect(name).toMatchObject({ status: 200, body: { name: 'Lobby' } });
    // Joining again is answered locally (the room is known on A now).
    expect((await aliceClient.joinRoom(alias)).roomId).toBe(roomId);
  });

  it('unknown remote aliases are 404, and a server does not vouch for users of others', async () => {
    const res = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(`#nope:${B.serverName}`)}`, { token: alice.accessToken, body: {} });
    expect(res).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
    // C asks B for a join template for a user of A: refused.
    const err = await C.hs.services.federation.client
      .get(B.serverName, `/_matrix/federation/v1/make_join/${encodeURIComponent(roomId)}/${encodeURIComponent(alice.userId)}`, { ver: ['10'] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationRequestError);
    expect(err).toMatchObject({ remoteStatus: 403, remoteErrcode: 'M_FORBIDDEN' });
    // A room version the joining server does not speak.
    const carol = `@carol:${C.serverName}`;
    const incompatible = await C.hs.services.federation.client
      .get(B.serverName, `/_matrix/federation/v1/make_join/${encodeURIComponent(roomId)}/${encodeURIComponent(carol)}`, { ver: ['1'] })
      .catch((e: unknown) => e);
    expect(incompatible).toMatchObject({ remoteStatus: 400, remoteErrcode: 'M_INCOMPATIBLE_ROOM_VERSION' });
  });

  it('alice sends, bob sees it in /sync; bob replies, alice sees it', async () => {
    await startSynced(bobClient!);
    await startSynced(aliceClient!);
    const atBob = nextMessage(bobClient!, roomId, 'hello from A');
    await aliceClient!.sendTextMessage(roomId, 'hello from A');
    expect((await atBob).getSender()).toBe(alice.userId);

    const atAlice = nextMessage(aliceClient!, roomId, 'hello from B');
    await bobClient!.sendTextMessage(roomId, 'hello from B');
    expect((await atAlice).getSender()).toBe(bob.userId);

    // A few in a row keep their order on the other side.
    const last = nextMessage(bobClient!, roomId, 'three');
    for (const body of ['one', 'two', 'three']) await aliceClient!.sendTextMessage(roomId, body);
    await last;
    expect((await messageBodies(B, bob, roomId)).reverse()).toEqual(['hello from A', 'hello from B', 'one', 'two', 'three']);
    // Each outbox drained: nothing left queued on either side.
    await eventually(async () => ((await B.hs.services.db.knex('federation_outbox').count({ n: '*' }).first())!.n == 0 ? true : undefined), 'B outbox empty');
    await eventually(async () => ((await A.hs.services.db.knex('federation_outbox').count({ n: '*' }).first())!.n == 0 ? true : undefined), 'A outbox empty');
  });

  it('serves events, missing events and state to servers in the room, and nothing to others', async () => {
    const client = A.hs.services.federation.client;
    const latest = await B.hs.services.db.knex('events').where({ room_id: roomId, outlier: false }).orderBy('stream_ordering', 'desc').first();
    const ev = await client.get<{ pdus: Array<{ room_id: string }> }>(B.serverName, `/_matrix/federation/v1/event/${encodeURIComponent(latest.event_id)}`);
    expect(ev.pdus[0]!.room_id).toBe(roomId);
    const ids = await client.get<{ pdu_ids: string[]; auth_chain_ids: string[] }>(B.serverName, `/_matrix/federation/v1/state_ids/${encodeURIComponent(roomId)}`, { event_id: latest.event_id });
    expect(ids.pdu_ids.length).toBeGreaterThanOrEqual(6);
    const state = await client.get<{ pdus: unknown[]; auth_chain: unknown[] }>(B.serverName, `/_matrix/federation/v1/state/${encodeURIComponent(roomId)}`, { event_id: latest.event_id });
    expect(state.pdus).toHaveLength(ids.pdu_ids.length);
    const missing = await client.post<{ events: Array<{ depth: number }> }>(B.serverName, `/_matrix/federation/v1/get_missing_events/${encodeURIComponent(roomId)}`, {
      earliest_events: [],
      latest_events: [latest.event_id],
      limit: 3,
    });
    expect(missing.events).toHaveLength(3);
    expect(missing.events.map((e) => e.depth)).toEqual([...missing.events.map((e) => e.depth)].sort((a, b) => a - b));
    const auth = await client.get<{ auth_chain: unknown[] }>(B.serverName, `/_matrix/federation/v1/event_auth/${encodeURIComponent(roomId)}/${encodeURIComponent(latest.event_id)}`);
    expect(auth.auth_chain.length).toBeGreaterThanOrEqual(3);
    const dir = await C.hs.services.federation.client.get(B.serverName, '/_matrix/federation/v1/query/directory', { room_alias: alias });
    expect(dir).toEqual({ room_id: roomId, servers: expect.arrayContaining([B.serverName, A.serverName]) });

    // C has no member in the room.
    const outsider = C.hs.services.federation.client;
    await expect(outsider.get(B.serverName, `/_matrix/federation/v1/event/${encodeURIComponent(latest.event_id)}`)).rejects.toMatchObject({ remoteStatus: 404 });
    await expect(outsider.get(B.serverName, `/_matrix/federation/v1/state_ids/${encodeURIComponent(roomId)}`, { event_id: latest.event_id })).rejects.toMatchObject({ remoteStatus: 403 });
  });

  it('answers a retried transaction without processing it again, and refuses PDUs it cannot check', async () => {
    const client = C.hs.services.federation.client;
    const forged = { room_id: roomId, type: 'm.room.message', sender: `@mallory:${C.serverName}`, content: { body: 'x' }, depth: 5, origin_server_ts: Date.now(), prev_events: [], auth_events: [], hashes: { sha256: 'AAAA' }, signatures: {} };
    const unknownRoom = { ...forged, room_id: `!nowhere:${C.serverName}` };
    const body = { origin: C.serverName, origin_server_ts: Date.now(), pdus: [forged, unknownRoom] };
    const first = await client.put<{ pdus: Record<string, { error?: string }> }>(B.serverName, '/_matrix/federation/v1/send/txn-1', body);
    const results = Object.values(first.pdus);
    expect(results).toHaveLength(2);
    for (const r of results) expect(r.error).toEqual(expect.any(String));
    const again = await client.put(B.serverName, '/_matrix/federation/v1/send/txn-1', { ...body, pdus: [] });
    expect(again).toEqual(first);
  });

  it('B queues while A is down and delivers once A is back (catch-up)', async () => {
    aliceClient!.stopClient();
    await A.stop();
    await bobClient!.sendTextMessage(roomId, 'while you were away');
    await eventually(async () => ((await destinationState(B, A.serverName))?.retry_count ?? 0) >= 1 ? true : undefined, 'a failed attempt to A');
    A = specChecked(await A.restart());
    await eventually(async () => ((await messageBodies(A, alice, roomId)).includes('while you were away') ? true : undefined), 'the message on A after restart');
    expect((await destinationState(B, A.serverName))?.retry_count).toBe(0);

    // matrix-js-sdk on the restarted A sees it in /sync too.
    aliceClient = sdkClient(A.baseUrl, alice);
    await startSynced(aliceClient);
    const room = aliceClient.getRoom(roomId)!;
    expect(room.getLiveTimeline().getEvents().map((e) => e.getContent().body)).toContain('while you were away');
    const atBob = nextMessage(bobClient!, roomId, 'back again');
    await aliceClient.sendTextMessage(roomId, 'back again');
    await atBob;
  });

  it('fills a gap with /get_missing_events when a transaction was lost', async () => {
    aliceClient?.stopClient();
    await A.stop();
    await bobClient!.setRoomTopic(roomId, 'lost topic');
    await bobClient!.sendTextMessage(roomId, 'lost message');
    await eventually(async () => ((await destinationState(B, A.serverName))?.retry_count ?? 0) >= 1 ? true : undefined, 'a failed attempt to A');
    // The transaction never makes it: B forgets it was queued.
    await B.hs.services.db.knex('federation_outbox').where({ destination: A.serverName }).delete();
    await B.hs.services.db.knex('federation_destinations').where({ destination: A.serverName }).update({ pending_txn_id: null, retry_count: 0, next_attempt_ts: 0 });
    A = specChecked(await A.restart());
    await bobClient!.sendTextMessage(roomId, 'after the gap');
    await eventually(async () => ((await messageBodies(A, alice, roomId)).includes('after the gap') ? true : undefined), 'the message after the gap on A');
    const bodies = await messageBodies(A, alice, roomId);
    expect(bodies.indexOf('lost message')).toBeGreaterThan(bodies.indexOf('after the gap')); // newest first
    const topic = await request(A.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`, { token: alice.accessToken });
    expect(topic.body).toMatchObject({ topic: 'lost topic' });
  });

  it('a queued transaction survives a restart of the sending server', async () => {
    aliceClient?.stopClient();
    await A.stop();
    await bobClient!.sendTextMessage(roomId, 'queued across restarts');
    await eventually(async () => ((await destinationState(B, A.serverName))?.retry_count ?? 0) >= 1 ? true : undefined, 'a failed attempt to A');
    const pending = (await destinationState(B, A.serverName))!.pending_txn_id;
    expect(pending).toEqual(expect.any(String));
    bobClient!.stopClient();
    await B.stop();
    A = specChecked(await A.restart());
    B = specChecked(await B.restart());
    await eventually(async () => ((await messageBodies(A, alice, roomId)).includes('queued across restarts') ? true : undefined), 'the message on A after both restarts');
    // Delivered under the txnId it was first sent with.
    expect(await A.hs.services.db.knex('federation_inbound_txns').where({ origin: B.serverName, txn_id: pending }).first()).toBeTruthy();
    expect(await B.hs.services.db.knex('federation_outbox').where({ destination: A.serverName })).toEqual([]);
  });
});
