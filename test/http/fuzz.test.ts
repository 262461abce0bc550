// Issue 11, "Done when": a property-based fuzz of every mounted client and federation route. Hostile bodies,
// path parameters, query strings and headers; every answer must be a spec error or a success, never a 5xx
// (502/504 allowed: unreachable remote servers), never slower than 5 s, and another user keeps working.
// SQLite only: the fuzz is about the HTTP edge and handlers; the database dialects have their own tests.
// Two servers on loopback: A is fuzzed, B signs federation requests to A so bodies reach A's handlers.
// Outbound federation is limited to A, B and one closed port (federation_domain_whitelist), so the run
// never waits on DNS; reaching arbitrary hosts is the outbound (SSRF) tests' subject.
// Reproduce a failure with SKJOL_FUZZ_SEED=<seed printed> (SKJOL_FUZZ_ROUTE=<regex> runs only matching
// routes; SKJOL_FUZZ_SHRINK=1 shrinks to a minimal input); SKJOL_FUZZ_RUNS raises the runs per route;
// SKJOL_FUZZ_ALL=1 lists every failing request instead of the first per route; SKJOL_FUZZ_DIALECT=postgres
// runs it on PostgreSQL.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../src/federation/xmatrix.js';
import type { RouteDefinition } from '../../src/http/route.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { specChecked } from '../federation/helpers.js';
import { createTestCa, issueCert } from '../federation/tls.js';
import { freePort, startHomeserver, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { loginDevice, registerUser, type TestUser } from '../helpers/users.js';
import { rawClient, type RawRequest, type RawResponse } from '../helpers/fuzz/rawRequest.js';
import { caseArbitrary, fixedCases, type FuzzCase } from '../helpers/fuzz/requests.js';

const SEED = Number(process.env.SKJOL_FUZZ_SEED ?? 0x5eed11);
// Runs per route, the fixed cases (fixedCases) included.
const RUNS_PER_ROUTE = Number(process.env.SKJOL_FUZZ_RUNS ?? 18);
const SLOW_MS = 5_000;
// Spec: "Standard error response" — M_ codes, or a namespaced (Java package style) custom code.
const ERRCODE = /^(M_[A-Z0-9_]+|[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+)$/;

const enc = encodeURIComponent;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A stable per-route seed, so adding a route does not change what the others are sent. */
function routeSeed(route: RouteDefinition): number {
  let h = SEED | 0;
  for (const ch of `${route.method} ${route.prefixes[0]}${route.path}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
  return h;
}

/** What is wrong with this answer, if anything. */
function violation(res: RawResponse): string | undefined {
  if (res.ms > SLOW_MS) return `answered after ${Math.round(res.ms)} ms`;
  if (res.status >= 500 && res.status !== 502 && res.status !== 504) return `status ${res.status}`;
  // Node's HTTP parser rejects a request line with raw non-ASCII bytes (400) or longer than its header
  // limit (431) before any Skjól code runs, with no body and the connection closed.
  if ((res.status === 400 || res.status === 431) && res.text === '' && res.contentType === '') return undefined;
  if (res.status >= 400) {
    const body = res.json as Record<string, unknown> | undefined;
    // User-interactive auth: a 401 with the flows is the spec's answer, errcode only after a failed stage.
    if (res.status === 401 && body && Array.isArray(body.flows) && (body.errcode === undefined || typeof body.errcode === 'string')) return undefined;
    if (!body || typeof body !== 'object' || typeof body.errcode !== 'string' || !ERRCODE.test(body.errcode) || typeof body.error !== 'string') {
      return `status ${res.status} without a spec error body`;
    }
  }
  return undefined;
}

const DIALECT = process.env.SKJOL_FUZZ_DIALECT === 'postgres' ? 'postgres' : 'sqlite';

describe(`fuzz: every client and federation route (${DIALECT})`, () => {
  let dir: string;
  let A: TestServer;
  let B: TestServer;
  let attacker: TestUser;
  let victim: TestUser;
  let victimRoom: string;
  let sharedRoom: string;
  let victimSince: string | undefined;
  const pools = new Map<string, string[]>();
  const victimFailures: string[] = [];
  const raw = rawClient();
  let victimRequests = 0;

  const api = async (user: TestUser, method: string, path: string, body?: unknown) => {
    const res = await request(A.baseUrl, method, path, { token: user.accessToken, ...(body !== undefined ? { body } : {}), skipSpecCheck: true });
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-fuzz-'));
    const ca = createTestCa(dir);
    const [portA, portB] = [await freePort(), await freePort()];
    const names = [`localhost:${portA}`, `127.0.0.1:${portB}`];
    const start = (i: number, port: number) =>
      startHomeserver({
        dialect: DIALECT,
        serverName: names[i],
        tls: { ...issueCert(dir, `s${i}`, ca), port },
        config: { federation_custom_ca_list: [ca.caPath], federation_domain_whitelist: [...names, '127.0.0.1:1'] },
      }).then(specChecked);
    [A, B] = [await start(0, portA), await start(1, portB)];
    attacker = await registerUser(A.baseUrl, 'fuzzer');
    victim = await registerUser(A.baseUrl, 'victim');
    const remote = await registerUser(B.baseUrl, 'remote');
    const c = '/_matrix/client/v3';
    const publicRoom = (await api(attacker, 'POST', `${c}/createRoom`, { preset: 'public_chat', room_alias_name: 'fuzz', name: 'fuzz' })).room_id;
    sharedRoom = (await api(attacker, 'POST', `${c}/createRoom`, { preset: 'private_chat', invite: [victim.userId] })).room_id;
    await api(victim, 'POST', `${c}/join/${enc(sharedRoom)}`, {});
    victimRoom = (await api(victim, 'POST', `${c}/createRoom`, { preset: 'private_chat' })).room_id;
    // B has a user in the public room, so B's signed reads of that room (state, backfill …) are answered.
    const joined = await request(B.baseUrl, 'POST', `${c}/join/${enc(publicRoom)}?server_name=${enc(A.serverName)}`, { token: remote.accessToken, body: {}, skipSpecCheck: true });
    if (joined.status !== 200) throw new Error(`remote join failed: ${joined.status} ${JSON.stringify(joined.body)}`);
    const send = async (user: TestUser, room: string) =>
      (await api(user, 'PUT', `${c}/rooms/${enc(room)}/send/m.room.message/setup${Math.random()}`, { msgtype: 'm.text', body: 'hi' })).event_id as string;
    const events = [await send(attacker, publicRoom), await send(attacker, sharedRoom), await send(victim, victimRoom)];
    const upload = await fetch(`${A.baseUrl}/_matrix/media/v3/upload?filename=a.txt`, {
      method: 'POST',
      headers: { authorization: `Bearer ${attacker.accessToken}`, 'content-type': 'text/plain' },
      body: 'hello',
    });
    const mediaId = String(((await upload.json()) as { content_uri: string }).content_uri).split('/').pop()!;
    const backup = (await api(attacker, 'POST', `${c}/room_keys/version`, { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: 'pk' } })).version;
    const filter = (await api(attacker, 'POST', `${c}/user/${enc(attacker.userId)}/filter`, { room: { timeline: { limit: 1 } } })).filter_id;
    const since = (await api(attacker, 'GET', `${c}/sync?timeout=0`)).next_batch;
    victimSince = (await api(victim, 'GET', `${c}/sync?timeout=0`)).next_batch;
    const a = A.serverName;
    const b = B.serverName;
    const set = (keys: string[], values: string[]) => keys.forEach((k) => pools.set(k, values));
    set(['room', 'roomid', 'room_id', 'roomidoralias'], [publicRoom, sharedRoom, victimRoom, `!unknown:${a}`, `!x:${b}`, `#fuzz:${a}`]);
    set(['alias', 'roomalias', 'room_alias', 'room_alias_name'], [`#fuzz:${a}`, `#new:${a}`, `#x:${b}`, 'fuzz']);
    set(['user', 'userid', 'user_id', 'sender', 'target', 'state_key', 'statekey', 'invite', 'users'], [attacker.userId, victim.userId, remote.userId, `@nobody:${a}`, `@x:127.0.0.1:1`, '']);
    set(['eventid', 'event_id', 'event', 'event_ids', 'prev_events', 'auth_events', 'earliest_events', 'latest_events'], [...events, `$unknown`]);
    set(['deviceid', 'device_id', 'devices', 'device'], [attacker.deviceId, victim.deviceId, 'NEWDEVICE']);
    set(['servername', 'server_name', 'server', 'origin', 'destination', 'via'], [a, b, '127.0.0.1:1']);
    set(['mediaid', 'media_id'], [mediaId, 'unknownmedia']);
    set(['eventtype', 'type', 'event_type', 'types'], ['m.room.message', 'm.room.name', 'm.room.member', 'm.room.power_levels', 'm.room.join_rules', 'm.room.encrypted', 'm.reaction', 'm.direct', 'org.example.x']);
    set(['txnid'], ['txn1', 'txn2']);
    set(['version'], [backup, '1', '999']);
    set(['filterid', 'filter'], [filter, '{"room":{"timeline":{"limit":1}}}', '{"room":{"rooms":["__proto__"]}}']);
    set(['kind'], ['override', 'underride', 'sender', 'room', 'content']);
    set(['ruleid', 'rule_id'], ['.m.rule.master', 'x', '.m.rule.contains_user_name']);
    set(['field'], ['displayname', 'avatar_url', 'm.tz']);
    set(['tag'], ['m.favourite', 'u.x']);
    set(['receipttype', 'receipt_type'], ['m.read', 'm.read.private', 'm.fully_read']);
    set(['protocol'], ['irc']);
    set(['keyid', 'key_id'], [A.hs.services.signingKey.keyId]);
    set(['from', 'to', 'since', 'next_batch', 'prev_batch', 'token', 'pos'], [since, 's0', 't1-1']);
    set(['limit'], ['1', '10']);
    set(['dir'], ['b', 'f']);
    set(['membership'], ['join', 'leave', 'invite', 'ban', 'knock']);
    set(['msgtype'], ['m.text', 'm.image']);
    set(['body', 'displayname', 'name', 'topic', 'reason', 'search_term', 'term'], ['hello', 'fuzz']);
    set(['url', 'avatar_url', 'content_uri'], [`mxc://${a}/${mediaId}`, 'http://127.0.0.1:1/x']);
    set(['algorithm', 'algorithms'], ['m.megolm.v1.aes-sha2', 'm.megolm_backup.v1.curve25519-aes-sha2', 'signed_curve25519', 'm.olm.v1.curve25519-aes-sha2']);
    set(['preset'], ['public_chat', 'private_chat', 'trusted_private_chat']);
    set(['reltype', 'rel_type'], ['m.thread', 'm.annotation', 'm.replace']);
    set(['filename'], ['a.txt']);
    set(['appserviceid'], ['as1']);
    set(['sessionid', 'session'], ['sess1']);
    set(['room_version', 'ver', 'new_version'], ['10', '11', '12', '1']);
  }, 60_000);

  afterAll(async () => {
    raw.close();
    await Promise.all([A, B].filter(Boolean).map((s) => s.close()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const stringsFor = (field: string): readonly string[] => {
    const key = field.toLowerCase();
    const hit = pools.get(key);
    if (hit) return hit;
    return [...new Set([...pools.values()].flat())];
  };

  /** Turns the generated auth choice into real credentials: the attacker's token, or B's signature. */
  function materialise(c: FuzzCase): RawRequest {
    const headers = { ...c.headers };
    let target = c.target;
    // The legacy event stream long-polls 30 s by default (as Synapse): ask it not to wait, the rest stays hostile.
    if (c.method === 'GET' && /\/events(\?|$)/.test(target)) target = target.replace(/\/events(\?|$)/, (_m, q: string) => `/events?timeout=0${q ? '&' : ''}`);
    switch (c.auth.kind) {
      case 'valid':
        headers.authorization = `Bearer ${attacker.accessToken}`;
        break;
      case 'queryToken':
        target += `${target.includes('?') ? '&' : '?'}access_token=${enc(attacker.accessToken)}`;
        break;
      case 'header':
        headers.authorization = c.auth.value;
        break;
      case 'signed': {
        const key = B.hs.services.signingKey;
        try {
          const content = c.body && c.body.length > 0 ? JSON.parse(utf8.decode(c.body)) : undefined;
          headers.authorization = signRequest({ method: c.method, uri: target, origin: B.serverName, destination: A.serverName, content }, key);
        } catch {
          // Not signable (not JSON, or not canonical JSON): the header still names a real origin and key.
          headers.authorization = `X-Matrix origin="${B.serverName}",destination="${A.serverName}",key="${key.keyId}",sig="AAAA"`;
        }
        break;
      }
      case 'none':
        break;
    }
    return { method: c.method, target, headers, body: c.body };
  }

  /** The attacker may have logged itself out: log in again so later requests still reach handlers. */
  async function keepAttackerLoggedIn(): Promise<void> {
    const who = await request(A.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: attacker.accessToken, skipSpecCheck: true });
    if (who.status === 200) return;
    attacker = { ...attacker, ...(await loginDevice(A.baseUrl, attacker)) };
  }

  /** The victim sends and syncs all along; each answer must be a 200. */
  async function victimLoop(stop: { done: boolean }): Promise<void> {
    let n = 0;
    while (!stop.done) {
      const started = performance.now();
      const sent = await request(A.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(victimRoom)}/send/m.room.message/v${n++}`, {
        token: victim.accessToken,
        body: { msgtype: 'm.text', body: `still here ${n}` },
      });
      const synced = await request(A.baseUrl, 'GET', `/_matrix/client/v3/sync?timeout=0${victimSince ? `&since=${enc(victimSince)}` : ''}`, { token: victim.accessToken });
      victimRequests += 2;
      if (sent.status !== 200) victimFailures.push(`victim send: ${sent.status} ${JSON.stringify(sent.body)}`);
      if (synced.status !== 200) victimFailures.push(`victim sync: ${synced.status} ${JSON.stringify(synced.body)}`);
      else victimSince = synced.body.next_batch;
      if (performance.now() - started > 2 * SLOW_MS) victimFailures.push(`victim send+sync took ${Math.round(performance.now() - started)} ms`);
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  it('answers hostile input on every route with a spec error, within 5 s, while another user keeps working', async () => {
    // Routes that can take the attacker out of its rooms or sessions go last, so the others still reach handlers.
    const destructive = (r: RouteDefinition) => /leave|kick|ban|forget|upgrade|logout|deactivate|delete|password/.test(r.path) || r.method === 'DELETE';
    const routes = [...A.hs.routes.filter((r) => !destructive(r)), ...A.hs.routes.filter(destructive)];
    expect(routes.length).toBeGreaterThan(150);
    const failures: string[] = [];
    let requests = 0;
    let signedAccepted = 0;
    const reached = new Set<RouteDefinition>();
    let slowest = 0;
    const statuses = new Map<number, number>();
    const stop = { done: false };
    const victimDone = victimLoop(stop);
    const started = performance.now();
    const only = process.env.SKJOL_FUZZ_ROUTE ? new RegExp(process.env.SKJOL_FUZZ_ROUTE) : undefined;
    for (const route of routes) {
      if (only && !only.test(`${route.method} ${route.prefixes[0]}${route.path}`)) continue;
      const seed = routeSeed(route);
      const details = await fc.check(
        fc.asyncProperty(caseArbitrary(route, stringsFor), async (c) => {
          const sent = materialise(c);
          let res: RawResponse;
          try {
            res = await raw.send(A.baseUrl, sent, SLOW_MS + 1_000);
          } catch (err) {
            const body = c.body ? c.body.subarray(0, 300).toString('utf8') : '';
            throw new Error(`${(err as Error).message}: ${sent.method} ${sent.target.slice(0, 300)} headers=${JSON.stringify(c.headers)} auth=${c.auth.kind} body=${body}`);
          }
          requests++;
          if (c.auth.kind === 'signed' && res.status !== 401 && res.status !== 403) signedAccepted++;
          slowest = Math.max(slowest, res.ms);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status < 300) reached.add(route);
          if (/logout|deactivate|devices|password/.test(route.path)) await keepAttackerLoggedIn();
          const wrong = violation(res);
          if (wrong) {
            const body = c.body ? c.body.subarray(0, 300).toString('utf8') : '';
            if (process.env.SKJOL_FUZZ_ALL) {
              failures.push(`${route.method} ${route.prefixes[0]}${route.path}: ${wrong}: ${sent.method} ${sent.target.slice(0, 300)} auth=${c.auth.kind} body=${body} → ${res.text.slice(0, 300)}`);
              return;
            }
            throw new Error(`${wrong}: ${sent.method} ${sent.target.slice(0, 300)} headers=${JSON.stringify(c.headers)} auth=${c.auth.kind} body=${body} → ${res.text.slice(0, 300)}`);
          }
        }),
        { seed, numRuns: RUNS_PER_ROUTE, examples: fixedCases(route, stringsFor).map((c) => [c] as [FuzzCase]), endOnFailure: !process.env.SKJOL_FUZZ_SHRINK },
      );
      if (details.failed) {
        const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
        failures.push(`${route.method} ${route.prefixes[0]}${route.path} (seed ${seed}, path ${details.counterexamplePath}): ${error}`);
      }
    }
    stop.done = true;
    await victimDone;
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `fuzz: ${routes.length} routes (${reached.size} answered 2xx at least once), ${requests} requests in ${seconds.toFixed(1)} s, slowest ${Math.round(slowest)} ms, ` +
        `${signedAccepted} signed federation requests past auth, victim ${victimRequests} requests; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((x, y) => x[0] - y[0])))}`,
    );
    if (process.env.SKJOL_FUZZ_ALL) console.log(`never 2xx:\n${routes.filter((r) => !reached.has(r)).map((r) => `${r.method} ${r.prefixes[0]}${r.path}`).join('\n')}`);
    if (failures.length > 0) console.log(`fuzz failures (reproduce with SKJOL_FUZZ_SEED=${SEED}):\n${failures.join('\n')}`);
    expect({ seed: SEED, failures }).toEqual({ seed: SEED, failures: [] });
    expect(victimFailures).toEqual([]);
    // B's signatures are accepted: federation bodies reach A's handlers, not only its auth check.
    if (!only) expect(signedAccepted).toBeGreaterThan(100);
  }, 180_000);

  it('the victim can still send, sync and query keys afterwards', async () => {
    const c = '/_matrix/client/v3';
    const sent = await request(A.baseUrl, 'PUT', `${c}/rooms/${enc(victimRoom)}/send/m.room.message/after`, { token: victim.accessToken, body: { msgtype: 'm.text', body: 'after' } });
    expect(sent.status).toBe(200);
    const synced = await request(A.baseUrl, 'GET', `${c}/sync?timeout=0`, { token: victim.accessToken });
    expect(synced.status).toBe(200);
    // The attacker may have kicked the victim from the shared room; the victim's own room is theirs.
    expect(synced.body.rooms.join[victimRoom].timeline.events.map((e: { content: { body?: string } }) => e.content.body)).toContain('after');
    const keys = await request(A.baseUrl, 'POST', `${c}/keys/query`, { token: victim.accessToken, body: { device_keys: { [victim.userId]: [], [attacker.userId]: [] } } });
    expect(keys.status).toBe(200);
  });
});
