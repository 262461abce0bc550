/**
 * IRC bridge benchmark: `npm run bench:bridge [-- --messages 300 --samples 50 --ghosts 30]`.
 *
 * Starts what the bridge tests use (a real ngircd, a real Skjól in-process, the bridge in-process) once
 * with a plain portal and once with an encrypted one (matrix-js-sdk with Rust crypto on the Matrix side),
 * measures throughput and latency both ways and the memory a ghost's device costs, and prints a markdown
 * table. Like `npm run bench` it never fails on a time: the exit code only says whether it could run.
 */
// matrix-js-sdk 43 needs Promise.withResolvers on Node 20; vitest's setup file does this for the tests.
import '../../src/polyfills.js';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import knexFactory, { type Knex } from 'knex';
import { ClientEvent, createClient, Filter, MatrixEventEvent, SyncState, type MatrixClient, type MatrixEvent } from 'matrix-js-sdk';
import { logger as sdkLogger } from 'matrix-js-sdk/lib/logger.js';
import { quietLogger, stopClients, waitForRoom } from '../helpers/crypto.js';
import { request } from '../helpers/http.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, joinedMembers, matrixUser, NETWORK, startBridgeFixture, type BridgeFixture } from '../bridge/helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from '../bridge/helpers/ircUser.js';
import { fmtBytes, fmtInt, fmtMs, percentile } from './stats.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const USAGE = `Usage: npm run bench:bridge -- [options]

  --messages N    messages per throughput run, each direction (default 300)
  --samples N     one-at-a-time round trips for the latency percentiles (default 50)
  --ghosts N      IRC users joining the encrypted portal for the memory measurement (default 30)
  --matrix-users N  Matrix users joining the encrypted portal for the connect-time measurement (default 50)
  --in-flight N   Matrix sends in flight during the Matrix→IRC throughput run (default 4)
  --only WHICH    plain or encrypted: run only that half
`;

interface Flags {
  messages: number;
  samples: number;
  ghosts: number;
  matrixUsers: number;
  inFlight: number;
  plain: boolean;
  encrypted: boolean;
}

function parseFlags(argv: string[]): Flags | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string' },
      samples: { type: 'string' },
      ghosts: { type: 'string' },
      'matrix-users': { type: 'string' },
      'in-flight': { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  const num = (name: string, raw: string | undefined, fallback: number, min: number, max: number) => {
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number between ${min} and ${max}`);
    return n;
  };
  const only = values.only?.trim().toLowerCase();
  if (only !== undefined && only !== 'plain' && only !== 'encrypted') throw new Error('--only: plain or encrypted');
  return {
    messages: num('messages', values.messages, 300, 1, 100_000),
    samples: num('samples', values.samples, 50, 1, 10_000),
    ghosts: num('ghosts', values.ghosts, 30, 1, 1000),
    matrixUsers: num('matrix-users', values['matrix-users'], 50, 0, 1000),
    inFlight: num('in-flight', values['in-flight'], 4, 1, 100),
    plain: only !== 'encrypted',
    encrypted: only !== 'plain',
  };
}

const log = (message: string) => process.stderr.write(`[bench:bridge ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The network's flood limit for every connection the bridge makes (bot and puppets): effectively off. */
const NO_FLOOD_LIMIT = { burst: 1000, interval_ms: 0 };
/** A run gives up when nothing new has arrived for this long (the table then says how many arrived). */
const STALL_MS = 20_000;
/** One latency sample fails when its message has not arrived after this long. */
const SAMPLE_TIMEOUT_MS = 15_000;
const WARMUP_ROUNDS = 3;
const BOT_ID = '@ircbot:localhost';
const ghostId = (nick: string) => `@irc_${NETWORK}_${nick.toLowerCase()}:localhost`;

// ---------------------------------------------------------------------------------------------------------
// Where messages arrive

/** When each message body was first seen on one side, counted per run tag (the part before the last ':'). */
class Arrivals {
  private readonly at = new Map<string, number>();
  private readonly counts = new Map<string, number>();
  private readonly last = new Map<string, number>();
  private readonly waiters = new Set<() => void>();

  note(body: string, t = performance.now()): void {
    if (this.at.has(body)) return;
    this.at.set(body, t);
    const tag = body.slice(0, Math.max(0, body.lastIndexOf(':')));
    this.counts.set(tag, (this.counts.get(tag) ?? 0) + 1);
    this.last.set(tag, t);
    for (const w of [...this.waiters]) w();
  }

  count(tag: string): number {
    return this.counts.get(tag) ?? 0;
  }

  /** When the latest message of the run arrived. */
  lastAt(tag: string): number | undefined {
    return this.last.get(tag);
  }

  /** Resolves true once `n` messages of the run are in, false when nothing new came for `stallMs`. */
  waitForCount(tag: string, n: number, stallMs = STALL_MS): Promise<boolean> {
    return new Promise((resolve) => {
      let seen = this.count(tag);
      let progressAt = performance.now();
      const check = () => {
        if (this.count(tag) < n) return;
        done();
        resolve(true);
      };
      const timer = setInterval(() => {
        const c = this.count(tag);
        if (c !== seen) {
          seen = c;
          progressAt = performance.now();
        } else if (performance.now() - progressAt > stallMs) {
          done();
          resolve(false);
        }
      }, 250);
      const done = () => {
        clearInterval(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** When this body arrived, waiting up to `timeoutMs` for it; undefined if it did not. */
  waitForBody(body: string, timeoutMs = SAMPLE_TIMEOUT_MS): Promise<number | undefined> {
    return new Promise((resolve) => {
      const check = () => {
        const t = this.at.get(body);
        if (t === undefined) return;
        done();
        resolve(t);
      };
      const timer = setTimeout(() => {
        done();
        resolve(undefined);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }
}

/** Notes every channel PRIVMSG the IRC user gets from `nick` (the Matrix user's puppet), as it is parsed. */
function listenOnIrc(user: IrcUser, nick: string, channel: string, arrivals: Arrivals): void {
  user.client.on('raw', (m) => {
    if (m.command === 'PRIVMSG' && m.nick === nick && (m.args[0] ?? '').toLowerCase() === channel && typeof m.args[1] === 'string') arrivals.note(m.args[1]);
  });
}

/**
 * The Matrix user's view of a plain portal: a /sync long-poll loop (filtered to the room, timeline limit
 * 1000 so a burst never leaves a gap) that notes the bodies of messages from one sender as responses come in.
 */
class SyncWatcher {
  private since: string | undefined;
  private readonly abort = new AbortController();
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Incremental responses with a gap in the room's timeline (messages the count would miss). */
  limited = 0;
  errors = 0;
  private readonly filter: string;

  constructor(
    private readonly baseUrl: string,
    private readonly user: TestUser,
    private readonly roomId: string,
    private readonly sender: string,
    private readonly arrivals: Arrivals,
  ) {
    this.filter = JSON.stringify({
      room: { rooms: [roomId], timeline: { limit: 1000, types: ['m.room.message'] }, state: { lazy_load_members: true }, ephemeral: { types: [] }, account_data: { types: [] } },
      presence: { types: [] },
      account_data: { types: [] },
    });
  }

  async start(): Promise<void> {
    await this.poll(0);
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop?.catch(() => undefined);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.poll(30_000);
      } catch (err) {
        if (this.stopped) return;
        this.errors++;
        log(`sync failed: ${(err as Error).message}`);
        await sleep(200);
      }
    }
  }

  private async poll(timeoutMs: number): Promise<void> {
    const params = new URLSearchParams({ timeout: String(timeoutMs), filter: this.filter });
    if (this.since) params.set('since', this.since);
    const res = await fetch(`${this.baseUrl}/_matrix/client/v3/sync?${params}`, {
      headers: { authorization: `Bearer ${this.user.accessToken}` },
      signal: this.abort.signal,
    });
    if (res.status !== 200) throw new Error(`/sync: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    const body = (await res.json()) as { next_batch: string; rooms?: { join?: Record<string, { timeline?: { limited?: boolean; events?: Array<Record<string, any>> } }> } };
    const t = performance.now();
    const timeline = body.rooms?.join?.[this.roomId]?.timeline;
    if (timeline?.limited && this.since) this.limited++;
    for (const e of timeline?.events ?? []) {
      if (e.type === 'm.room.message' && e.sender === this.sender && typeof e.content?.body === 'string') this.arrivals.note(e.content.body, t);
    }
    this.since = body.next_batch;
  }
}

let txnCounter = 0;
/** PUT /send without the spec check the test helpers do, so the client side costs as little as it can. */
async function putText(baseUrl: string, user: TestUser, roomId: string, body: string): Promise<void> {
  const txn = `bench-${process.pid}-${txnCounter++}`;
  const res = await request(baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, {
    token: user.accessToken,
    body: { msgtype: 'm.text', body },
    skipSpecCheck: true,
  });
  if (res.status !== 200) throw new Error(`PUT /send: HTTP ${res.status} ${JSON.stringify(res.body)}`);
}

/**
 * A matrix-js-sdk client with Rust crypto (in-memory store), like test/helpers/crypto.ts's but without the
 * per-response spec check and with a sync filter whose timeline limit (1000) keeps bursts gap-free: with the
 * SDK's default filter the server's limit of 10 applies and a limited sync would skip messages.
 */
async function startBenchCryptoClient(baseUrl: string, user: TestUser): Promise<MatrixClient> {
  const client = createClient({ baseUrl, userId: user.userId, accessToken: user.accessToken, deviceId: user.deviceId, logger: quietLogger });
  await client.initRustCrypto({ useIndexedDB: false });
  const filter = new Filter(user.userId);
  filter.setDefinition({ room: { timeline: { limit: 1000 } } });
  const prepared = new Promise<void>((resolve) => {
    const on = (state: SyncState) => {
      if (state !== SyncState.Prepared) return;
      client.off(ClientEvent.Sync, on);
      resolve();
    };
    client.on(ClientEvent.Sync, on);
  });
  await client.startClient({ initialSyncLimit: 30, filter });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${user.userId}: first sync timed out`)), 30_000);
  });
  try {
    await Promise.race([prepared, timeout]);
  } finally {
    clearTimeout(timer);
  }
  return client;
}

// ---------------------------------------------------------------------------------------------------------
// Measurements

/** One portal with one Matrix user and one IRC user, seen from both ends. */
interface Portal {
  channel: string;
  bob: IrcUser;
  /** Bodies Bob got from the Matrix user's puppet. */
  onIrc: Arrivals;
  /** Bodies the Matrix user got from Bob's ghost. */
  onMatrix: Arrivals;
  /** Sends as the Matrix user; resolves when the homeserver has accepted it. */
  sendFromMatrix(body: string): Promise<void>;
}

interface Throughput {
  n: number;
  delivered: number;
  /** First send → last arrival (or → giving up). */
  totalMs: number;
  /** First send → last send accepted. */
  sendMs: number;
}

interface Latency {
  m2i: number[];
  i2m: number[];
  failures: number;
}

interface Half {
  m2i?: Throughput;
  i2m?: Throughput;
  latency?: Latency;
  /** Sync responses with a gap, or sync errors, on the Matrix side (the counts could be off). */
  syncTrouble?: string;
  setupMs: number;
}

async function matrixToIrcThroughput(p: Portal, tag: string, n: number, inFlight: number): Promise<Throughput> {
  const arrived = p.onIrc.waitForCount(tag, n);
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await p.sendFromMatrix(`${tag}:${i}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, n) }, worker));
  const sendMs = performance.now() - t0;
  const complete = await arrived;
  const end = complete ? p.onIrc.lastAt(tag)! : performance.now();
  return { n, delivered: p.onIrc.count(tag), totalMs: end - t0, sendMs };
}

async function ircToMatrixThroughput(p: Portal, tag: string, n: number): Promise<Throughput> {
  const arrived = p.onMatrix.waitForCount(tag, n);
  const t0 = performance.now();
  // floodProtection is off on the test client: every line is written to the socket at once.
  await Promise.all(Array.from({ length: n }, (_, i) => p.bob.say(p.channel, `${tag}:${i}`)));
  const sendMs = performance.now() - t0;
  const complete = await arrived;
  const end = complete ? p.onMatrix.lastAt(tag)! : performance.now();
  return { n, delivered: p.onMatrix.count(tag), totalMs: end - t0, sendMs };
}

/** Round trips one at a time: Matrix→IRC, then IRC→Matrix; the first WARMUP_ROUNDS are not counted. */
async function latency(p: Portal, tag: string, samples: number, timeoutMs = SAMPLE_TIMEOUT_MS): Promise<Latency> {
  const result: Latency = { m2i: [], i2m: [], failures: 0 };
  for (let i = 0; i < WARMUP_ROUNDS + samples; i++) {
    const measured = i >= WARMUP_ROUNDS;
    const out = `${tag}-m2i:${i}`;
    const t0 = performance.now();
    const got = p.onIrc.waitForBody(out, timeoutMs);
    await p.sendFromMatrix(out);
    const t1 = await got;
    if (t1 === undefined) result.failures++;
    else if (measured) result.m2i.push(t1 - t0);

    const back = `${tag}-i2m:${i}`;
    const t2 = performance.now();
    const got2 = p.onMatrix.waitForBody(back, timeoutMs);
    await p.bob.say(p.channel, back);
    const t3 = await got2;
    if (t3 === undefined) result.failures++;
    else if (measured) result.i2m.push(t3 - t2);
  }
  return result;
}

async function measure(p: Portal, label: string, flags: Flags, half: Half): Promise<void> {
  log(`${label}: warm-up and ${flags.samples} latency round trips…`);
  // Latency first: it doubles as the warm-up (first Olm/Megolm sessions, JIT) for the throughput runs.
  half.latency = await latency(p, `${label}-lat`, flags.samples);
  log(`${label}: latency p50 Matrix→IRC ${fmtMs(pct(half.latency.m2i, 50))}, IRC→Matrix ${fmtMs(pct(half.latency.i2m, 50))}`);
  log(`${label}: ${flags.messages} messages Matrix→IRC (${flags.inFlight} in flight)…`);
  half.m2i = await matrixToIrcThroughput(p, `${label}-m2i`, flags.messages, flags.inFlight);
  log(`${label}: Matrix→IRC ${describeThroughput(half.m2i)}`);
  log(`${label}: ${flags.messages} messages IRC→Matrix…`);
  half.i2m = await ircToMatrixThroughput(p, `${label}-i2m`, flags.messages);
  log(`${label}: IRC→Matrix ${describeThroughput(half.i2m)}`);
}

// ---------------------------------------------------------------------------------------------------------
// The two set-ups

let activeFixture: BridgeFixture | undefined;

async function runPlain(flags: Flags): Promise<Half> {
  const t0 = performance.now();
  log('plain: starting ngircd, Skjól and the bridge…');
  const f = await startBridgeFixture({ network: { flood: NO_FLOOD_LIMIT } });
  activeFixture = f;
  let bob: IrcUser | undefined;
  let watcher: SyncWatcher | undefined;
  try {
    const alice = await matrixUser(f.hs, 'alice', 'Alice');
    bob = await connectIrcUser(f.irc, 'bob');
    const channel = '#bench';
    await bob.join(channel);
    const roomId = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_bench:localhost')}`, {})).room_id as string;
    await eventually(async () => (await joinedMembers(f.hs, alice, roomId)).includes(ghostId('bob')), 'bob’s ghost in the portal');
    const joined = await bob.waitFor((e) => e.kind === 'join' && e.channel === channel && (e.nick ?? '').startsWith('Alice'), 'Alice’s puppet joining', 20_000);
    const onIrc = new Arrivals();
    const onMatrix = new Arrivals();
    listenOnIrc(bob, joined.nick!, channel, onIrc);
    watcher = new SyncWatcher(f.hs.baseUrl, alice, roomId, ghostId('bob'), onMatrix);
    await watcher.start();
    const portal: Portal = { channel, bob, onIrc, onMatrix, sendFromMatrix: (body) => putText(f.hs.baseUrl, alice, roomId, body) };
    const half: Half = { setupMs: performance.now() - t0 };
    await measure(portal, 'plain', flags, half);
    if (watcher.limited || watcher.errors) half.syncTrouble = `${watcher.limited} limited /sync responses, ${watcher.errors} /sync errors`;
    return half;
  } finally {
    await watcher?.stop();
    await bob?.disconnect().catch(() => undefined);
    await f.close();
    activeFixture = undefined;
  }
}

interface GhostMemory {
  ghosts: number;
  joined: number;
  devicesBefore: number;
  devicesAfter: number;
  /** First JOIN → every ghost joined to the portal (each got its device first). */
  createMs: number;
  /** When each ghost showed up in the portal, ms after the first JOIN, ascending. */
  joinTimes: number[];
  /** Last ghost joined → snapshots stopped changing. */
  settleMs: number;
  before: MemorySample;
  after: MemorySample;
  snapshotsBefore: SnapshotStats;
  snapshotsAfter: SnapshotStats;
}

interface MemorySample {
  rss: number;
  heapUsed: number;
  external: number;
  /** How long it took RSS to hold still. */
  waitedMs: number;
}

interface SnapshotStats {
  rows: number;
  bytes: number;
}

interface EncryptedHalf extends Half {
  memory?: GhostMemory;
  connect?: ConnectTimes;
}

const gc = (globalThis as { gc?: (options?: Record<string, string>) => void }).gc;

/**
 * Whole-process memory once it has stopped shrinking. A plain gc() leaves the young generation at its grown
 * size, which V8's memory reducer gives back seconds later; the 'last-resort' collection does that at once
 * but leaves more of the old generation behind, so a plain gc() follows it. Even then RSS keeps falling for
 * a few seconds after busy phases (pages freed in the background), so it is read until it holds still.
 */
async function sampleMemory(): Promise<MemorySample> {
  const t0 = performance.now();
  if (!gc) {
    const m = process.memoryUsage();
    return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, waitedMs: 0 };
  }
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  const recent: number[] = [];
  for (;;) {
    await sleep(500);
    gc();
    const m = process.memoryUsage();
    recent.push(m.rss);
    if (recent.length > 4) recent.shift();
    const steady = recent.length === 4 && Math.max(...recent) - Math.min(...recent) < 1024 * 1024;
    if (steady || performance.now() - t0 > 15_000) return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, waitedMs: performance.now() - t0 };
  }
}

async function snapshotStats(db: Knex): Promise<SnapshotStats & { devices: number }> {
  for (let attempt = 0; ; attempt++) {
    try {
      const snap = (await db('crypto_snapshots').first(db.raw('count(*) as n'), db.raw('coalesce(sum(length(data)), 0) as bytes'))) as { n: number; bytes: number };
      const dev = (await db('crypto_devices').first(db.raw('count(*) as n'))) as { n: number };
      return { rows: Number(snap.n), bytes: Number(snap.bytes), devices: Number(dev.n) };
    } catch (err) {
      // The bridge writes to the same file; a busy database is retried.
      if (attempt >= 20) throw err;
      await sleep(100);
    }
  }
}

async function ghostMemory(f: BridgeFixture, alice: TestUser, roomId: string, channel: string, k: number): Promise<GhostMemory> {
  const db = knexFactory({ client: 'sqlite3', connection: { filename: join(f.dir, 'bridge.db') }, useNullAsDefault: true });
  const users: IrcUser[] = [];
  try {
    // Connected (not joined) before the first sample, so their IRC client objects are not counted as ghost cost.
    const nicks = Array.from({ length: k }, (_, i) => `ghost${String(i).padStart(3, '0')}`);
    for (let i = 0; i < nicks.length; i += 10) users.push(...(await Promise.all(nicks.slice(i, i + 10).map((n) => connectIrcUser(f.irc, n)))));
    const snapBefore = await snapshotStats(db);
    const before = await sampleMemory();
    log(`encrypted: ${k} IRC users join ${channel}; the bridge makes a ghost with its own device for each…`);
    const t0 = performance.now();
    await Promise.all(users.map((u) => u.join(channel)));
    const ids = nicks.map(ghostId);
    const appeared = new Map<string, number>();
    let joined = 0;
    await eventually(
      async () => {
        const members = new Set(await joinedMembers(f.hs, alice, roomId));
        for (const id of ids) if (members.has(id) && !appeared.has(id)) appeared.set(id, performance.now() - t0);
        joined = appeared.size;
        return joined === ids.length;
      },
      `all ${k} ghosts in the encrypted portal`,
      30_000 + k * 5_000,
    ).catch((err: Error) => log(`${err.message} (${joined} of ${k} joined)`));
    const createMs = performance.now() - t0;
    const joinTimes = [...appeared.values()].sort((a, b) => a - b);
    // Let the bridge finish what the joins set off (device list updates, snapshot saves) before sampling.
    const t1 = performance.now();
    let last = await snapshotStats(db);
    let stableSince = performance.now();
    while (performance.now() - stableSince < 2000 && performance.now() - t1 < 30_000) {
      await sleep(250);
      const now = await snapshotStats(db);
      if (now.rows !== last.rows || now.bytes !== last.bytes || now.devices !== last.devices) {
        last = now;
        stableSince = performance.now();
      }
    }
    const settleMs = stableSince - t1;
    const after = await sampleMemory();
    const snapAfter = await snapshotStats(db);
    return {
      ghosts: k,
      joined,
      devicesBefore: snapBefore.devices,
      devicesAfter: snapAfter.devices,
      createMs,
      joinTimes,
      settleMs,
      before,
      after,
      snapshotsBefore: { rows: snapBefore.rows, bytes: snapBefore.bytes },
      snapshotsAfter: { rows: snapAfter.rows, bytes: snapAfter.bytes },
    };
  } finally {
    await db.destroy();
    await Promise.all(users.map((u) => u.disconnect().catch(() => undefined)));
  }
}

interface ConnectTimes {
  users: number;
  connected: number;
  /** First join sent → the IRC observer saw every user's JOIN. */
  allMs: number;
  /** When each user's JOIN reached IRC, ms after the first join, ascending. */
  times: number[];
}

/**
 * N Matrix users join the encrypted portal at once (raw HTTP clients: the bridge's work is the same); each
 * gets its own IRC connection, paced by the network's limits. Timed until an IRC user sees all N JOINs.
 */
async function matrixUsersConnect(f: BridgeFixture, observer: IrcUser, channel: string, n: number): Promise<ConnectTimes> {
  const users: TestUser[] = [];
  for (let i = 0; i < n; i++) users.push(await matrixUser(f.hs, `crowd${i}`, `Crowd${i}`));
  const mark = observer.mark();
  const t0 = performance.now();
  const seen = new Map<string, number>();
  await Promise.all(users.map((u) => api(f.hs, u, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_secret:localhost')}`, {})));
  const deadline = Date.now() + 300_000;
  while (seen.size < n && Date.now() < deadline) {
    for (const e of observer.events.slice(mark)) {
      if (e.kind === 'join' && e.channel === channel && /^Crowd\d+/.test(e.nick ?? '') && !seen.has(e.nick!)) seen.set(e.nick!, e.at);
    }
    await sleep(100);
  }
  const wallT0 = Date.now() - (performance.now() - t0);
  const times = [...seen.values()].map((at) => at - wallT0).sort((a, b) => a - b);
  return { users: n, connected: seen.size, allMs: times.at(-1) ?? 0, times };
}

async function runEncrypted(flags: Flags): Promise<EncryptedHalf> {
  const t0 = performance.now();
  log('encrypted: starting ngircd, Skjól and the bridge (encryption on)…');
  const channel = '#secret';
  const f = await startBridgeFixture({ encryption: true, network: { flood: NO_FLOOD_LIMIT, channels: [{ channel, encrypted: true }] } });
  activeFixture = f;
  let bob: IrcUser | undefined;
  let client: MatrixClient | undefined;
  try {
    const alice = await matrixUser(f.hs, 'alice', 'Alice');
    client = await startBenchCryptoClient(f.hs.baseUrl, alice);
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join(channel);
    const roomId = (await client.joinRoom('#irc_test_secret:localhost')).roomId;
    await waitForRoom(client, roomId, [alice.userId, BOT_ID, ghostId('bob')]);
    const joined = await bob.waitFor((e) => e.kind === 'join' && e.channel === channel && (e.nick ?? '').startsWith('Alice'), 'Alice’s puppet joining', 20_000);
    const onIrc = new Arrivals();
    const onMatrix = new Arrivals();
    listenOnIrc(bob, joined.nick!, channel, onIrc);
    // Bob's messages as the Rust client decrypts them (a late room key makes the SDK retry and emit again).
    client.on(MatrixEventEvent.Decrypted, (event: MatrixEvent, err?: Error) => {
      if (err || event.isDecryptionFailure() || event.getRoomId() !== roomId || event.getSender() !== ghostId('bob')) return;
      const body = event.getClearContent()?.body;
      if (typeof body === 'string') onMatrix.note(body);
    });
    const c = client;
    const portal: Portal = {
      channel,
      bob,
      onIrc,
      onMatrix,
      sendFromMatrix: async (body) => {
        await c.sendTextMessage(roomId, body);
      },
    };
    const half: EncryptedHalf = { setupMs: performance.now() - t0 };
    await measure(portal, 'encrypted', flags, half);
    const undecryptable = (client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? []).filter((e) => e.isDecryptionFailure()).length;
    if (undecryptable) half.syncTrouble = `${undecryptable} events the client could not decrypt`;
    half.memory = await ghostMemory(f, alice, roomId, channel, flags.ghosts);
    const m = half.memory;
    log(`encrypted: ${m.joined} ghosts in ${fmtMs(m.createMs)}, RSS +${mb(m.after.rss - m.before.rss)}, heap +${mb(m.after.heapUsed - m.before.heapUsed)}`);
    if (flags.matrixUsers) {
      half.connect = await matrixUsersConnect(f, bob, channel, flags.matrixUsers);
      log(`encrypted: ${half.connect.connected} of ${flags.matrixUsers} Matrix users on IRC in ${fmtMs(half.connect.allMs)}`);
    }
    return half;
  } finally {
    if (client) await stopClients([client]);
    await bob?.disconnect().catch(() => undefined);
    await f.close();
    activeFixture = undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Report

const pct = (values: number[], p: number) => percentile([...values].sort((a, b) => a - b), p);
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const perSec = (t: Throughput) => (t.delivered / t.totalMs) * 1000;

function describeThroughput(t: Throughput): string {
  const missing = t.delivered < t.n ? ` — only ${fmtInt(t.delivered)} of ${fmtInt(t.n)} arrived before it stalled ${STALL_MS / 1000} s` : '';
  return `${fmtInt(perSec(t))} msg/s (${fmtInt(t.delivered)} in ${fmtMs(t.totalMs)}; all sent in ${fmtMs(t.sendMs)})${missing}`;
}

function report(flags: Flags, plain: Half | undefined, encrypted: EncryptedHalf | undefined): string {
  const rows: Array<[string, string, string]> = [];
  const both = (name: string, f: (h: Half) => string) => rows.push([name, plain ? f(plain) : 'not run', encrypted ? f(encrypted) : 'not run']);
  const thr = (t: Throughput | undefined) => (t ? `**${fmtInt(perSec(t))} msg/s**` : 'n/a');
  const thrDetail = (t: Throughput | undefined) =>
    t ? `${fmtInt(t.delivered)}/${fmtInt(t.n)} in ${fmtMs(t.totalMs)}; sending took ${fmtMs(t.sendMs)}` : 'n/a';
  const lat = (v: number[] | undefined) => (v && v.length ? `**${fmtMs(pct(v, 50))}** / ${fmtMs(pct(v, 95))}` : 'n/a');

  both(`Matrix→IRC throughput (${flags.messages} msgs, ${flags.inFlight} sends in flight)`, (h) => thr(h.m2i));
  both('… delivered / first send → last IRC arrival', (h) => thrDetail(h.m2i));
  both(`IRC→Matrix throughput (${flags.messages} msgs, written at once)`, (h) => thr(h.i2m));
  both('… delivered / first line → last Matrix arrival', (h) => thrDetail(h.i2m));
  both(`Matrix→IRC latency p50 / p95 (${flags.samples} samples)`, (h) => lat(h.latency?.m2i));
  both(`IRC→Matrix latency p50 / p95 (${flags.samples} samples)`, (h) => lat(h.latency?.i2m));
  if ((plain?.latency?.failures ?? 0) + (encrypted?.latency?.failures ?? 0) > 0) {
    both(`latency samples lost (> ${SAMPLE_TIMEOUT_MS / 1000} s)`, (h) => String(h.latency?.failures ?? 0));
  }
  if (plain?.syncTrouble || encrypted?.syncTrouble) both('Matrix-side trouble (counts may be off)', (h) => h.syncTrouble ?? '—');
  both('Set-up (fixture start → portal joined both ways), unmeasured', (h) => fmtMs(h.setupMs));

  const m = encrypted?.memory;
  if (m) {
    const k = Math.max(1, m.devicesAfter - m.devicesBefore);
    const gcNote = gc ? 'after GC' : 'no GC';
    const only = (name: string, value: string) => rows.push([name, '—', value]);
    only(`Ghost devices created (${m.ghosts} IRC users join; bridge devices before → after)`, `${m.joined} ghosts joined; ${m.devicesBefore} → ${m.devicesAfter} devices in ${fmtMs(m.createMs)} (${fmtMs(m.createMs / k)} each)`);
    const c = encrypted?.connect;
    if (c) {
      only(`Matrix users connected to IRC (${c.users} join the encrypted portal at once)`, `${c.connected} of ${c.users} in ${fmtMs(c.allMs)}; half of them by ${fmtMs(c.times[Math.floor(c.times.length / 2)] ?? 0)}`);
    }
    const half = Math.floor(m.joinTimes.length / 2);
    if (half >= 2) {
      const first = m.joinTimes[half - 1]!;
      const last = m.joinTimes[m.joinTimes.length - 1]!;
      only('… ms per ghost for the first / second half of the joins', `${fmtMs(first / half)} / ${fmtMs((last - first) / (m.joinTimes.length - half))}`);
    }
    only(`RSS before → after (${gcNote})`, `${mb(m.before.rss)} → ${mb(m.after.rss)} (+${mb(m.after.rss - m.before.rss)})`);
    only(`heapUsed before → after (${gcNote})`, `${mb(m.before.heapUsed)} → ${mb(m.after.heapUsed)} (+${mb(m.after.heapUsed - m.before.heapUsed)})`);
    only(`external (ArrayBuffers, wasm) before → after (${gcNote})`, `${mb(m.before.external)} → ${mb(m.after.external)}`);
    only('**RSS / heapUsed per ghost device**', `**${((m.after.rss - m.before.rss) / k / 1024 / 1024).toFixed(2)} MB** / **${((m.after.heapUsed - m.before.heapUsed) / k / 1024 / 1024).toFixed(2)} MB**`);
    only(
      'crypto_snapshots in bridge.db: rows, sum(length(data)) before → after',
      `${m.snapshotsBefore.rows} rows, ${fmtBytes(m.snapshotsBefore.bytes)} → ${m.snapshotsAfter.rows} rows, ${fmtBytes(m.snapshotsAfter.bytes)}`,
    );
    only(
      '… snapshot bytes per device (average after)',
      m.snapshotsAfter.rows ? `${fmtBytes(m.snapshotsAfter.bytes / m.snapshotsAfter.rows)} (+${fmtBytes((m.snapshotsAfter.bytes - m.snapshotsBefore.bytes) / k)} per new device)` : 'n/a',
    );
  }

  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout
  }
  const esc = (x: string) => x.replace(/\|/g, '\\|');
  return [
    '',
    '## Skjól IRC bridge benchmark',
    '',
    '| metric | plain portal | encrypted portal |',
    '|---|---|---|',
    ...rows.map(([a, b, c]) => `| ${esc(a)} | ${esc(b)} | ${esc(c)} |`),
    '',
    `Machine: Node ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${os.type()} ${os.release()} ${os.arch()}, ` +
      `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB RAM. Commit ${commit} (working tree as is).`,
    'Set-up: one process runs the homeserver (SQLite), the bridge (SQLite), the Matrix client (raw HTTP + a /sync long-poll for the plain ' +
      'portal, matrix-js-sdk with Rust crypto for the encrypted one) and the IRC clients; only ngircd is a separate process. ' +
      'They all share the CPU, so the numbers are a floor for the bridge, not its ceiling.',
    `Flood limits off: the network config has flood { burst: ${NO_FLOOD_LIMIT.burst}, interval_ms: ${NO_FLOOD_LIMIT.interval_ms} } (the default is 4 lines, then 1/s), ` +
      'the IRC test clients have floodProtection off, and ngircd runs with MaxPenaltyTime = 0.',
    `Latency: sender's send (for the encrypted portal including the SDK encrypting it) → first moment the other side has the message ` +
      `(IRC line parsed; /sync response or Rust-crypto decryption on Matrix), after ${WARMUP_ROUNDS} unmeasured round trips. ` +
      'Throughput: messages delivered ÷ (first send → last arrival); Matrix→IRC can go no faster than the homeserver accepts the PUTs ("sending took").',
    ...(m
      ? [
          `Memory: ${m.ghosts} IRC users connect first, then join the encrypted channel; the samples are whole-process ` +
            '(homeserver, clients and bridge alike) ' +
            (gc
              ? `after global.gc() (tsx --expose-gc), read once RSS held still for 2 s (waited ${fmtMs(m.before.waitedMs)} / ${fmtMs(m.after.waitedMs)}). `
              : 'WITHOUT a GC (global.gc is not exposed: run tsx/node with --expose-gc), so they are noisier. ') +
            'RSS still moves by ±15 MB between samples of an idle process, more than a few dozen devices add, so heapUsed is the steadier ' +
            'per-device figure. The crypto wasm module (one linear memory for the bridge and the Rust client) never shrinks: devices that fit ' +
            'into wasm memory freed after the throughput runs add no RSS.',
        ]
      : []),
    `Flags: --messages ${flags.messages} --samples ${flags.samples} --ghosts ${flags.ghosts} --matrix-users ${flags.matrixUsers} --in-flight ${flags.inFlight}.`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------

function installCleanup(): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: closing the fixture…`);
    const done = () => process.exit(signal === 'SIGINT' ? 130 : 143);
    void Promise.race([activeFixture?.close() ?? Promise.resolve(), sleep(5000)]).finally(done);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if (!flags) return 0;
  (sdkLogger as unknown as { setLevel(level: string): void }).setLevel('error');
  installCleanup();
  log(`Node ${process.version}, ${os.cpus().length} CPUs, global.gc ${gc ? 'available' : 'not available'}`);
  const started = performance.now();
  let plain: Half | undefined;
  let encrypted: EncryptedHalf | undefined;
  try {
    if (flags.plain) plain = await runPlain(flags);
    if (flags.encrypted) encrypted = await runEncrypted(flags);
  } catch (err) {
    log(`benchmark failed: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
  log(`done in ${fmtMs(performance.now() - started)}`);
  process.stdout.write(report(flags, plain, encrypted));
  return 0;
}

main().then(
  (code) => process.stdout.write('', () => process.exit(code)),
  (err: unknown) => {
    log(`bench:bridge: ${(err as Error).message}`);
    process.exit(1);
  },
);
