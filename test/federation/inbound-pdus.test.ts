import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPdu } from '../../src/rooms/eventFormat.js';
import { getRoomVersion } from '../../src/rooms/roomVersions.js';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { enc, eventually, startPair, type Fleet } from './helpers.js';

// Inbound PDUs as Synapse handles them (spec: Server-Server API, "Checks performed on receipt of a PDU"):
// the transaction answers {} for rejected events, a rejected event keeps the state before it (so later
// events may build on it), and a gap get_missing_events cannot close is filled with /state_ids.
describe.each(testDialects())('inbound PDUs, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat' } });
    roomId = created.body.room_id;
    const joined = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} });
    expect(joined.status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  /** An event by alice that A signs and sends to B in a transaction of its own, built on B's head or `prev`. */
  async function sendFromA(content: Record<string, unknown>, type: string, stateKey: string | undefined, prev?: { eventId: string; depth: number }, redacts?: string, room = roomId) {
    const tpl = await B.hs.services.rooms.joinTemplate(room, alice.userId, 'join');
    const version = getRoomVersion(tpl.room_version)!;
    const t = tpl.event as { prev_events: string[]; depth: number };
    const state = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(room)}/state`, { token: bob.accessToken });
    const pick = (type: string, key: string) => (state.body as Array<{ type: string; state_key: string; event_id: string }>).find((e) => e.type === type && e.state_key === key)!.event_id;
    const authEvents = [pick('m.room.create', ''), pick('m.room.power_levels', ''), pick('m.room.member', alice.userId)];
    const built = buildPdu(
      {
        room_id: room,
        sender: alice.userId,
        type,
        ...(redacts !== undefined ? { redacts } : {}),
        ...(stateKey !== undefined ? { state_key: stateKey } : {}),
        content,
        prev_events: prev ? [prev.eventId] : t.prev_events,
        auth_events: authEvents,
        depth: prev ? prev.depth + 1 : t.depth,
        origin_server_ts: Date.now(),
      },
      version,
      { serverName: A.serverName, key: A.hs.services.signingKey },
    );
    const res = await A.hs.services.federation.client.request<{ pdus: Record<string, unknown> }>({
      destination: B.serverName,
      method: 'PUT',
      path: `/_matrix/federation/v1/send/inbound-${Date.now()}-${Math.random()}`,
      body: { origin: A.serverName, origin_server_ts: Date.now(), pdus: [built.pdu] },
    });
    return { ...built, depth: built.pdu.depth, res };
  }

  const stateIds = (eventId: string) =>
    A.hs.services.federation.client
      .request<{ pdu_ids: string[] }>({ destination: B.serverName, method: 'GET', path: `/_matrix/federation/v1/state_ids/${enc(roomId)}`, query: { event_id: eventId } })
      .then((r) => ({ status: 200, ids: [...r.pdu_ids].sort() }), (err: { remoteStatus?: number }) => ({ status: err.remoteStatus ?? 0, ids: [] as string[] }));

  it('answers {} for a rejected event, keeps the state before it, and accepts an event built on it', async () => {
    const before = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state`, { token: bob.accessToken });
    // Alice (power 0) raises herself to 100: the auth rules reject it.
    const forged = await sendFromA({ users: { [alice.userId]: 100 } }, 'm.room.power_levels', '');
    expect(forged.res.pdus[forged.eventId]).toEqual({});
    const next = await sendFromA({ msgtype: 'm.text', body: 'after the rejected one' }, 'm.room.message', undefined, forged);
    expect(next.res.pdus[next.eventId]).toEqual({});
    const seen = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(next.eventId)}`, { token: bob.accessToken });
    expect(seen.status).toBe(200);
    // The state at the next event is the state before the rejected one; the rejected event has none to give.
    const stateBefore = (before.body as Array<{ event_id: string }>).map((e) => e.event_id).sort();
    expect(await stateIds(next.eventId)).toEqual({ status: 200, ids: stateBefore });
    expect((await stateIds(forged.eventId)).status).toBe(404);
    const pl = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`, { token: bob.accessToken });
    expect(pl.body.users[alice.userId]).toBeUndefined();
  });

  it('applies a redaction by a user below the redact level only to events of their own server, and never across rooms', async () => {
    const msg = await request(B.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/redact-me`, { token: bob.accessToken, body: { msgtype: 'm.text', body: 'Hello' } });
    // Alice (power 0, another server) redacts bob's message: accepted as an event, not applied (room v3+).
    const fake = await sendFromA({}, 'm.room.redaction', undefined, undefined, msg.body.event_id);
    expect(fake.res.pdus[fake.eventId]).toEqual({});
    expect((await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(fake.eventId)}`, { token: bob.accessToken })).status).toBe(200);
    const ev = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(msg.body.event_id)}`, { token: bob.accessToken });
    expect(ev.body.content.body).toBe('Hello');
    expect(ev.body.unsigned.redacted_by).toBeUndefined();
    // Her own message she may redact.
    const own = await sendFromA({ msgtype: 'm.text', body: 'mine' }, 'm.room.message', undefined);
    const ownRedaction = await sendFromA({}, 'm.room.redaction', undefined, undefined, own.eventId);
    const ownNow = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(own.eventId)}`, { token: bob.accessToken });
    expect(ownNow.body.unsigned.redacted_by).toBe(ownRedaction.eventId);
    // A redaction in a second room naming an event of the first is rejected.
    const other = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat' } });
    const joined = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(other.body.room_id)}`, { token: alice.accessToken, body: {} });
    expect(joined.status).toBe(200);
    const mine2 = await sendFromA({ msgtype: 'm.text', body: 'mine too' }, 'm.room.message', undefined);
    const cross = await sendFromA({}, 'm.room.redaction', undefined, undefined, mine2.eventId, other.body.room_id);
    expect(cross.res.pdus[cross.eventId]).toEqual({});
    expect((await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(other.body.room_id)}/event/${enc(cross.eventId)}`, { token: bob.accessToken })).status).toBe(404);
    const mine2Now = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(mine2.eventId)}`, { token: bob.accessToken });
    expect(mine2Now.body.content.body).toBe('mine too');
  });

  it('never takes the state of another room from a prev event there: such an event is dropped', async () => {
    const other = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat' } });
    const otherId = other.body.room_id as string;
    expect((await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(otherId)}`, { token: alice.accessToken, body: {} })).status).toBe(200);
    const there = await request(B.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/cross-prev`, { token: bob.accessToken, body: { msgtype: 'm.text', body: 'in the first room' } });
    const thereEv = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(there.body.event_id)}`, { token: bob.accessToken });
    expect(thereEv.status).toBe(200);
    const depth = (await B.hs.services.rooms.events.get(B.hs.services.db.knex, there.body.event_id))!.pdu.depth;
    const cross = await sendFromA({ msgtype: 'm.text', body: 'built on the first room' }, 'm.room.message', undefined, { eventId: there.body.event_id, depth }, undefined, otherId);
    expect(cross.res.pdus[cross.eventId]).toEqual({});
    expect((await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(otherId)}/event/${enc(cross.eventId)}`, { token: bob.accessToken })).status).toBe(404);
  });

  it("serves the events of a user erased at deactivation redacted (GET /event, as Synapse)", async () => {
    const carol = await registerUser(B.baseUrl, 'carol');
    expect((await request(B.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: carol.accessToken, body: {} })).status).toBe(200);
    const sent = await request(B.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/erase-me`, { token: carol.accessToken, body: { msgtype: 'm.text', body: 'body1' } });
    const fetch = () =>
      A.hs.services.federation.client.request<{ pdus: Array<{ content: Record<string, unknown> }> }>({ destination: B.serverName, method: 'GET', path: `/_matrix/federation/v1/event/${enc(sent.body.event_id)}` });
    expect((await fetch()).pdus[0]!.content.body).toBe('body1');
    const gone = await request(B.baseUrl, 'POST', '/_matrix/client/v3/account/deactivate', {
      token: carol.accessToken,
      body: { erase: true, auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: carol.userId }, password: 'pw-carol-secret' } },
    });
    expect(gone.status).toBe(200);
    expect((await fetch()).pdus[0]!.content).toEqual({});
  });

  it('fills a gap longer than /get_missing_events returns with the state at the oldest missing prev event (/state_ids)', async () => {
    // B stops hearing from A: A's events to B pile up, then are dropped (a lost transaction), far more than
    // one /get_missing_events answer (10) holds.
    const levels = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`, { token: bob.accessToken });
    const raised = await request(B.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`, { token: bob.accessToken, body: { ...levels.body, users: { ...levels.body.users, [alice.userId]: 50 } } });
    await eventually(async () => {
      const r = await request(A.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(raised.body.event_id)}`, { token: alice.accessToken });
      return r.status === 200 ? true : undefined;
    }, 'the power levels on A');
    const sent: string[] = [];
    const realRequest = A.hs.services.federation.client.request.bind(A.hs.services.federation.client);
    const client = A.hs.services.federation.client;
    client.request = (async (req: Parameters<typeof realRequest>[0]) => {
      if (req.method === 'PUT' && req.path.startsWith('/_matrix/federation/v1/send/')) throw new Error('lost on the way');
      return realRequest(req);
    }) as typeof client.request;
    try {
      const topic = await request(A.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { token: alice.accessToken, body: { topic: 'lost topic' } });
      expect(topic.status).toBe(200);
      for (let i = 0; i < 25; i++) {
        const r = await request(A.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/gap${i}`, { token: alice.accessToken, body: { msgtype: 'm.text', body: `lost ${i}` } });
        sent.push(r.body.event_id);
      }
      await A.hs.services.db.knex('federation_outbox').where({ destination: B.serverName }).delete();
      await A.hs.services.db.knex('federation_destinations').where({ destination: B.serverName }).update({ pending_txn_id: null, retry_count: 0, next_attempt_ts: 0 });
    } finally {
      client.request = realRequest as typeof client.request;
    }
    const stateIdCalls: string[] = [];
    const realB = B.hs.services.federation.client.request.bind(B.hs.services.federation.client);
    B.hs.services.federation.client.request = (async (req: Parameters<typeof realB>[0]) => {
      if (req.path.startsWith('/_matrix/federation/v1/state_ids/')) stateIdCalls.push(String(req.query?.event_id));
      return realB(req);
    }) as typeof realB;
    try {
      const last = await request(A.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/gap-end`, { token: alice.accessToken, body: { msgtype: 'm.text', body: 'after the gap' } });
      await eventually(async () => {
        const r = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(last.body.event_id)}`, { token: bob.accessToken });
        return r.status === 200 ? true : undefined;
      }, 'the event after the gap on B');
    } finally {
      B.hs.services.federation.client.request = realB as typeof realB;
    }
    // One /get_missing_events round (10 events), then the state at the event before the oldest of them.
    expect(stateIdCalls.length).toBe(1);
    const topic = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { token: bob.accessToken });
    expect(topic.body).toMatchObject({ topic: 'lost topic' });
    // Bob and alice still talk both ways.
    const reply = await request(B.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/reply`, { token: bob.accessToken, body: { msgtype: 'm.text', body: 'reply' } });
    await eventually(async () => {
      const r = await request(A.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(reply.body.event_id)}`, { token: alice.accessToken });
      return r.status === 200 ? true : undefined;
    }, 'bob reply on A');
  });
});
