import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

type Json = any;
const enc = encodeURIComponent;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns something other than undefined (the test's own timeout bounds it). */
async function until<T>(check: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    await sleep(100);
  }
}

// Message retention: Synapse's `retention` config and the m.room.retention state event.
describe.each(testDialects())('message retention on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let txn = 0;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const send = async (user: TestUser, roomId: string, content: Record<string, unknown>, type = 'm.room.message'): Promise<string> => {
    const res = await api(user, 'PUT', `/rooms/${enc(roomId)}/send/${type}/r${++txn}`, content);
    expect(res.status).toBe(200);
    return res.body.event_id;
  };
  const timelineIds = async (user: TestUser, roomId: string): Promise<string[]> =>
    (await api(user, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100`)).body.chunk.map((e: Json) => e.event_id);
  const searchCount = async (user: TestUser, term: string): Promise<number> =>
    (await api(user, 'POST', '/search', { search_categories: { room_events: { search_term: term } } })).body.search_categories.room_events.count;

  beforeAll(async () => {
    server = await startHomeserver({
      dialect,
      config: { retention: { enabled: true, default_policy: { max_lifetime: '1s' }, purge_jobs: [{ interval: '200ms' }] } },
    });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('purges messages older than max_lifetime on schedule, keeps current state, and the room goes on', async () => {
    const roomId = (await api(alice, 'POST', '/createRoom', { preset: 'public_chat', name: 'Old times', topic: 'kept topic' })).body.room_id;
    expect((await api(bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    const first = await send(alice, roomId, { msgtype: 'm.text', body: 'retentionmarker one' });
    const reply = await send(bob, roomId, { msgtype: 'm.text', body: 'retentionmarker two', 'm.relates_to': { rel_type: 'm.thread', event_id: first } });
    const reaction = await send(bob, roomId, { 'm.relates_to': { rel_type: 'm.annotation', event_id: first, key: '👍' } }, 'm.reaction');
    const redacted = await send(alice, roomId, { msgtype: 'm.text', body: 'retentionmarker three' });
    expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(redacted)}/r${++txn}`, { reason: 'oops' })).status).toBe(200);
    const old = [first, reply, reaction, redacted];

    // Indexed first (so the search below proves the purge, not a slow indexer), then gone once a job has run.
    await until(async () => ((await searchCount(alice, 'retentionmarker')) === 2 ? true : undefined));
    // Rows gone, and the redaction, the room's newest event, kept as its forward extremity with no content.
    const knex = server.hs.services.db.knex;
    await until(async () => ((await knex('events').whereIn('event_id', old)).length === 0 ? true : undefined));
    const extremity = await until(async () => {
      const rows: Json[] = await knex('events').where({ room_id: roomId, type: 'm.room.redaction' });
      return rows.length === 1 && JSON.parse(rows[0].json).content && Object.keys(JSON.parse(rows[0].json).content).length === 0 ? rows[0] : undefined;
    });
    expect(JSON.parse(extremity.json).content).toEqual({});

    for (const id of old) {
      expect((await api(alice, 'GET', `/rooms/${enc(roomId)}/event/${enc(id)}`)).status).toBe(404);
      expect((await api(bob, 'GET', `/rooms/${enc(roomId)}/context/${enc(id)}`)).status).toBe(404);
    }
    expect(await searchCount(alice, 'retentionmarker')).toBe(0);
    expect(await searchCount(bob, 'retentionmarker')).toBe(0);
    const relations = await api(alice, 'GET', `/rooms/${enc(roomId)}/relations/${enc(first)}`);
    expect(relations.status === 404 || relations.body.chunk.length === 0).toBe(true);

    // Current state stays, and paginating back over the purged stretch ends cleanly with state events only.
    const state: Json[] = (await api(alice, 'GET', `/rooms/${enc(roomId)}/state`)).body;
    expect(state.find((e) => e.type === 'm.room.name').content).toEqual({ name: 'Old times' });
    expect(state.find((e) => e.type === 'm.room.topic').content).toEqual({ topic: 'kept topic' });
    expect(state.filter((e) => e.type === 'm.room.member' && e.content.membership === 'join').map((e) => e.state_key).sort()).toEqual([alice.userId, bob.userId].sort());
    let from: string | undefined;
    const seen: Json[] = [];
    for (let page = 0; page < 20; page++) {
      const res = await api(bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=3${from ? `&from=${enc(from)}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.chunk);
      if (res.body.end === undefined) break;
      from = res.body.end;
    }
    expect(seen.length).toBeGreaterThan(0);
    // Only state is left (the pruned extremity is older than max_lifetime, so hidden too).
    expect(seen.filter((e) => typeof e.state_key !== 'string')).toEqual([]);
    expect(JSON.stringify(seen)).not.toContain('retentionmarker');
    expect(seen.map((e) => e.type)).toContain('m.room.create');

    // The room keeps working: a longer policy from now on, then new messages that outlive the next runs.
    expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.retention/`, { max_lifetime: 365 * 86_400_000 })).status).toBe(200);
    const fresh = await send(bob, roomId, { msgtype: 'm.text', body: 'after the purge' });
    const canaryRoom = (await api(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    // The canary's first message goes once a run started after it (the second stays as the extremity).
    const canary = await send(alice, canaryRoom, { msgtype: 'm.text', body: 'canary' });
    await send(alice, canaryRoom, { msgtype: 'm.text', body: 'canary 2' });
    await until(async () => ((await timelineIds(alice, canaryRoom)).includes(canary) ? undefined : true));
    expect((await timelineIds(alice, roomId))[0]).toBe(fresh);
    expect((await api(alice, 'GET', `/rooms/${enc(roomId)}/event/${enc(fresh)}`)).body.content.body).toBe('after the purge');
    const sync = await api(alice, 'GET', `/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 5 } } }))}`);
    expect(sync.body.rooms.join[roomId].timeline.events.map((e: Json) => e.event_id)).toContain(fresh);
  });

  it('validates m.room.retention as Synapse does', async () => {
    const roomId = (await api(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    const put = (content: unknown) => api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.retention/`, content);
    for (const bad of [{ max_lifetime: '1d' }, { max_lifetime: 1.5 }, { min_lifetime: true }, { min_lifetime: [1] }]) {
      const res = await put(bad);
      expect(res.status).toBe(400);
      expect(res.body.errcode).toBe('M_BAD_JSON');
    }
    const asMessage = await api(alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.retention/r${++txn}`, { max_lifetime: 1000 });
    expect(asMessage.status).toBe(400);
    expect((await put({ min_lifetime: 1000, max_lifetime: 86_400_000 })).status).toBe(200);
    const created = await api(alice, 'POST', '/createRoom', { initial_state: [{ type: 'm.room.retention', state_key: '', content: { max_lifetime: 'soon' } }] });
    expect(created.status).toBe(400);
  });
});

describe.each(testDialects())('expired messages before a purge job on %s', (dialect) => {
  let server: TestServer;
  afterAll(async () => {
    await server?.close();
  });

  it('are hidden from reads as soon as they are older than max_lifetime, as Synapse does', async () => {
    server = await startHomeserver({ dialect, config: { retention: { enabled: true, purge_jobs: [{ interval: '1d' }] } } });
    const alice = await registerUser(server.baseUrl, 'alice');
    const api = (method: string, path: string, body?: unknown) =>
      request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: alice.accessToken, ...(body !== undefined ? { body } : {}) });
    const roomId = (await api('POST', '/createRoom', { preset: 'public_chat', initial_state: [{ type: 'm.room.retention', state_key: '', content: { max_lifetime: 1000 } }] })).body.room_id;
    const sent = (await api('PUT', `/rooms/${enc(roomId)}/send/m.room.message/h1`, { msgtype: 'm.text', body: 'soon hidden' })).body.event_id as string;
    await until(async () => ((await api('GET', `/rooms/${enc(roomId)}/event/${enc(sent)}`)).status === 404 ? true : undefined));
    const chunk: Json[] = (await api('GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`)).body.chunk;
    expect(chunk.filter((e) => typeof e.state_key !== 'string')).toEqual([]);
    expect((await api('GET', `/rooms/${enc(roomId)}/context/${enc(sent)}`)).status).toBe(404);
    // No job has run: the row is still there, only hidden.
    expect(await server.hs.services.db.knex('events').where({ event_id: sent })).toHaveLength(1);
  });
});

describe.each(testDialects())('an interrupted retention purge on %s', (dialect) => {
  let server: TestServer;
  afterAll(async () => {
    await server?.close();
  });

  it('resumes at start-up and removes nothing after its cutoff', async () => {
    // Retention on, with jobs far apart: only the resumed purge can remove anything here.
    server = await startHomeserver({ dialect, config: { retention: { enabled: true, purge_jobs: [{ interval: '1d' }] } } });
    const alice = await registerUser(server.baseUrl, 'alice');
    const api = (method: string, path: string, body?: unknown) =>
      request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: alice.accessToken, ...(body !== undefined ? { body } : {}) });
    const roomId = (await api('POST', '/createRoom', { preset: 'public_chat', topic: 'still here' })).body.room_id;
    const sendText = async (body: string, n: number) => (await api('PUT', `/rooms/${enc(roomId)}/send/m.room.message/t${n}`, { msgtype: 'm.text', body })).body.event_id as string;
    const old = [await sendText('interrupted one', 1), await sendText('interrupted two', 2)];
    const lastOld = (await api('GET', `/rooms/${enc(roomId)}/event/${enc(old[1]!)}`)).body.origin_server_ts as number;
    await until(async () => (Date.now() > lastOld + 1 ? true : undefined));
    const kept = await sendText('after the cutoff', 3);

    // What a crash between two purge batches leaves behind: the progress row with its cutoff.
    await server.hs.services.db.knex('retention_purges').insert({ room_id: roomId, cutoff_ts: lastOld + 1, started_ts: lastOld + 1 });
    server = await server.restart();

    await until(async () => ((await server.hs.services.db.knex('retention_purges').where({ room_id: roomId })).length === 0 ? true : undefined));
    const ids = (await api('GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100`)).body.chunk.map((e: Json) => e.event_id);
    expect(ids).not.toContain(old[0]);
    expect(ids).not.toContain(old[1]);
    expect(ids[0]).toBe(kept);
    expect((await api('GET', `/rooms/${enc(roomId)}/state/m.room.topic/`)).body).toEqual({ topic: 'still here' });
    expect((await api('GET', `/rooms/${enc(roomId)}/event/${enc(old[0]!)}`)).status).toBe(404);
  });
});
