import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { enc, startFleet, type Fleet } from './helpers.js';

/** Retries `check` (assertions) until it passes, for at most 20 s. */
async function eventually(check: () => unknown): Promise<void> {
  const until = Date.now() + 20_000;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A pino logger at info whose lines are kept, parsed, for the test to read. */
function capturedLogger() {
  const lines: Array<Record<string, any>> = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line));
      }
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines, text: () => raw.join('\n') };
}

/** Scrapes a metrics listener; returns one value per series, keyed by name and labels as exposed. */
async function scrape(url: string): Promise<{ text: string; value(name: string, labels?: Record<string, string>): number }> {
  const res = await fetch(`${url}/_synapse/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return {
    text,
    value(name, labels = {}) {
      let total = 0;
      for (const line of text.split('\n')) {
        const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
        if (!m || m[1] !== name) continue;
        const have = new Map([...(m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
        if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) total += Number(m[4]);
      }
      return total;
    },
  };
}

// Only the SQLite run: the counters do not depend on the database, and the pool gauge is read from knex either way.
describe('metrics and request logs of two federating servers', () => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let metricsA: string, metricsB: string;
  let alice: TestUser, bob: TestUser;
  let roomId: string;
  const logA = capturedLogger();
  const logB = capturedLogger();

  beforeAll(async () => {
    fleet = await startFleet('sqlite', ['localhost', '127.0.0.1'], { enable_metrics: true }, [logA.logger, logB.logger]);
    [A, B] = fleet.servers as [TestServer, TestServer];
    metricsA = `http://127.0.0.1:${await A.hs.listen(0, '127.0.0.1', undefined, { resources: ['metrics'] })}`;
    metricsB = `http://127.0.0.1:${await B.hs.listen(0, '127.0.0.1', undefined, { resources: ['metrics'] })}`;
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
    roomId = (await request(A.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'public_chat' } })).body.room_id;
    expect((await request(B.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.accessToken, body: {} })).status).toBe(200);
  }, 90_000);

  afterAll(async () => {
    await fleet?.close();
  });

  const send = (body: string, txn: string) =>
    request(A.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, { token: alice.accessToken, body: { msgtype: 'm.text', body } });

  it('serves Prometheus text with process metrics and the server_name label', async () => {
    const m = await scrape(metricsA);
    expect(m.text).toMatch(/^# TYPE process_cpu_seconds_total counter$/m);
    expect(m.value('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(m.value('synapse_server_name_info', { server_name: A.serverName })).toBe(1);
    expect(m.value('skjol_database_pool_connections', { state: 'used' })).toBeGreaterThanOrEqual(0);
    expect(m.text).toMatch(/skjol_database_pool_connections\{state="free"/);
  });

  it('counts sends: requests by servlet, response times, events persisted, and the federation transactions both ways', async () => {
    const before = await scrape(metricsA);
    const beforeB = await scrape(metricsB);
    for (let i = 0; i < 3; i++) expect((await send(`hello ${i}`, `m${i}`)).status).toBe(200);
    await eventually(async () => {
      const messages = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=5`, { token: bob.accessToken });
      expect(messages.body.chunk.filter((e: { content: { body?: string } }) => e.content.body?.startsWith('hello ')).length).toBe(3);
    });
    const after = await scrape(metricsA);
    const afterB = await scrape(metricsB);
    const servlet = { method: 'PUT', servlet: 'RoomSendEventRestServlet' };
    expect(after.value('synapse_http_server_requests_received_total', servlet) - before.value('synapse_http_server_requests_received_total', servlet)).toBe(3);
    expect(
      after.value('synapse_http_server_response_time_seconds_count', { ...servlet, code: '200' }) - before.value('synapse_http_server_response_time_seconds_count', { ...servlet, code: '200' }),
    ).toBe(3);
    expect(after.value('synapse_http_server_responses_total', { method: 'PUT', code: '200' })).toBeGreaterThanOrEqual(3);
    expect(after.value('synapse_storage_events_persisted_events_total') - before.value('synapse_storage_events_persisted_events_total')).toBe(3);
    expect(after.value('synapse_federation_client_sent_transactions_total')).toBeGreaterThan(before.value('synapse_federation_client_sent_transactions_total'));
    expect(after.value('synapse_federation_client_sent_pdu_destinations_count_total') - before.value('synapse_federation_client_sent_pdu_destinations_count_total')).toBe(3);
    expect(afterB.value('synapse_federation_server_received_pdus_total') - beforeB.value('synapse_federation_server_received_pdus_total')).toBe(3);
    // B persisted the three events it received, too.
    expect(afterB.value('synapse_storage_events_persisted_events_total') - beforeB.value('synapse_storage_events_persisted_events_total')).toBe(3);
    expect(after.value('skjol_federation_destinations_backing_off')).toBe(0);
  });

  it('counts /sync by type and long-polls by how they ended, and shows the waiting ones', async () => {
    const initial = await request(A.baseUrl, 'GET', '/_matrix/client/v3/sync?timeout=0', { token: alice.accessToken });
    const before = await scrape(metricsA);
    const poll = request(A.baseUrl, 'GET', `/_matrix/client/v3/sync?timeout=30000&since=${enc(initial.body.next_batch)}`, { token: alice.accessToken });
    await eventually(async () => expect((await scrape(metricsA)).value('synapse_notifier_listeners')).toBe(1));
    await send('wake up', 'wake');
    expect((await poll).body.rooms.join[roomId].timeline.events.some((e: { content: { body?: string } }) => e.content.body === 'wake up')).toBe(true);
    const after = await scrape(metricsA);
    expect(after.value('skjol_notifier_long_polls_total', { outcome: 'woken' }) - before.value('skjol_notifier_long_polls_total', { outcome: 'woken' })).toBe(1);
    expect(after.value('skjol_sync_requests_total', { type: 'incremental_sync' }) - before.value('skjol_sync_requests_total', { type: 'incremental_sync' })).toBe(1);
    expect(after.value('skjol_sync_requests_total', { type: 'initial_sync' })).toBeGreaterThanOrEqual(1);
    expect(after.value('synapse_notifier_listeners')).toBe(0);
  });

  it('logs one info line per request: method, path without the token, status, duration, user or origin server', async () => {
    const secret = alice.accessToken;
    const res = await fetch(`${A.baseUrl}/_matrix/client/v3/account/whoami?access_token=${enc(secret)}&x=1`);
    expect(res.status).toBe(200);
    const bad = await request(A.baseUrl, 'GET', '/_matrix/client/v3/rooms/!nope:localhost/state', { token: alice.accessToken, skipSpecCheck: true });
    expect(bad.status).toBe(403);
    await eventually(() => {
      const whoami = logA.lines.find((l) => l.msg === 'Processed request' && l.path?.startsWith('/_matrix/client/v3/account/whoami'));
      expect(whoami).toMatchObject({ level: 30, method: 'GET', path: '/_matrix/client/v3/account/whoami?access_token=<redacted>&x=1', status: 200, user: alice.userId, ip: '127.0.0.1' });
      expect(typeof whoami!.ms).toBe('number');
      expect(whoami!.requestId).toMatch(/^[0-9a-f]{12}$/);
    });
    const refused = logA.lines.find((l) => l.msg === 'Processed request' && l.path === '/_matrix/client/v3/rooms/!nope:localhost/state');
    expect(refused).toMatchObject({ status: 403, errcode: 'M_FORBIDDEN', user: alice.userId });
    // Federation requests name the origin server; the signatures in the Authorization header never appear.
    const inbound = logB.lines.find((l) => l.msg === 'Processed request' && l.path?.startsWith('/_matrix/federation/v1/send/'));
    expect(inbound).toMatchObject({ method: 'PUT', status: 200, origin: A.serverName });
    expect(logA.text()).not.toContain(secret);
    expect(logB.text()).not.toMatch(/X-Matrix/);
    // Probes and scrapes stay out of the info log.
    expect(logA.lines.some((l) => l.msg === 'Processed request' && l.path === '/_synapse/metrics')).toBe(false);
  });

  it('with log_requests: false, request lines go to debug', async () => {
    const server = await A.restart({ log_requests: false });
    fleet.servers[0] = A = server;
    const seen = logA.lines.length;
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/versions')).status).toBe(200);
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: alice.accessToken })).status).toBe(200);
    expect(logA.lines.slice(seen).filter((l) => l.msg === 'Processed request')).toEqual([]);
  });
});
