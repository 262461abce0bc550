/**
 * (e) Simplified sliding sync (MSC4186) for a user in many rooms, with Element X's room-list request:
 * the first window on fresh connections, an incremental request after one new message, and the wake-up of
 * a long-polling request when another user sends. Setup (rooms, messages) is concurrent and not measured.
 */
import { performance } from 'node:perf_hooks';
import { createRoom, joinRoom, pool, register, sendMessage, sendMessageOk, slidingSync, type BenchUser, type SlidingSyncBody } from '../client.js';
import { sleep } from '../server.js';
import { summarize, type Summary } from '../stats.js';
import type { ScenarioContext } from './context.js';

export interface SlidingSyncOptions {
  rooms: number;
  messagesPerRoom: number;
  /** Fresh connections timed for the first window. */
  firstWindows: number;
  /** Incremental requests and long-poll wake-ups timed. */
  samples: number;
  /** Rooms being created at once during setup. */
  setupConcurrency: number;
  /** Pause after starting the long-poll, so it is parked in the server before the other user sends. */
  parkMs: number;
}

export interface SlidingSyncResult {
  rooms: number;
  messagesPerRoom: number;
  first: Summary;
  firstBytes: number;
  firstRooms: number;
  listCount: number;
  incremental: Summary;
  incrementalBytes: number;
  wake: Summary;
  failures: number;
  setupMs: number;
}

/** Every this many rooms is a DM with the other user (unnamed, so it shows heroes); as many are encrypted. */
const DM_EVERY = 10;
/** Rooms the other user sends into during the incremental and long-poll samples (all DMs). */
const ACTIVE_ROOMS = 10;

/** The room list request Element X makes: one list, a window of 20, the newest event, the state it draws with. */
export function roomListRequest(connId: string): SlidingSyncBody {
  return {
    conn_id: connId,
    lists: {
      all_rooms: {
        ranges: [[0, 19]],
        timeline_limit: 1,
        required_state: [
          ['m.room.name', ''],
          ['m.room.avatar', ''],
          ['m.room.encryption', ''],
          ['m.room.member', '$ME'],
          ['m.room.create', ''],
        ],
      },
    },
  };
}

type TimelineRoom = { timeline?: Array<{ type: string; content?: { body?: unknown } }> };

function carries(body: { rooms?: Record<string, TimelineRoom> } | undefined, roomId: string, text: string): boolean {
  return (body?.rooms?.[roomId]?.timeline ?? []).some((e) => e.type === 'm.room.message' && e.content?.body === text);
}

export interface SlidingSyncFixture {
  me: BenchUser;
  other: BenchUser;
  /** DMs of `me` and `other`, where `other` sends during the samples. */
  active: string[];
}

export async function runSlidingSync(ctx: ScenarioContext, opts: SlidingSyncOptions): Promise<SlidingSyncResult> {
  const setupStart = performance.now();
  const fixture = await setupSlidingSync(ctx, opts);
  // Let the after-commit work of the setup (push evaluation, indexing) drain before timing anything.
  await sleep(5000);
  return measureSlidingSync(ctx, fixture, opts, performance.now() - setupStart);
}

/** A user in `opts.rooms` rooms: every tenth a DM with the other user, every tenth encrypted, the rest named. */
export async function setupSlidingSync(ctx: ScenarioContext, opts: Pick<SlidingSyncOptions, 'rooms' | 'messagesPerRoom' | 'setupConcurrency'>): Promise<SlidingSyncFixture> {
  const { client, log } = ctx;
  const me = await register(client, `${ctx.runId}e_me`);
  const other = await register(client, `${ctx.runId}e_other`);
  log(`(e) creating ${opts.rooms} rooms with ${opts.messagesPerRoom} messages each (setup, not measured)…`);
  const dms: string[] = [];
  let done = 0;
  await pool(
    Array.from({ length: opts.rooms }, (_, i) => i),
    opts.setupConcurrency,
    async (r) => {
      const dm = r % DM_EVERY === 0;
      const encrypted = r % DM_EVERY === 1;
      const roomId = await createRoom(client, me, {
        preset: dm ? 'trusted_private_chat' : 'private_chat',
        ...(dm ? { is_direct: true, invite: [other.userId] } : { name: `bench-ss-${r}` }),
        ...(encrypted ? { initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }] } : {}),
      });
      if (dm) {
        await joinRoom(client, other, roomId);
        dms.push(roomId);
      }
      for (let m = 0; m < opts.messagesPerRoom; m++) {
        const sender = dm && m % 2 === 1 ? other : me;
        await sendMessageOk(client, sender, roomId, `e-${r}-${m}`, `room ${r} message ${m}: the quick brown fox jumps over the lazy dog`);
      }
      done++;
      if (done % 200 === 0) log(`(e)   ${done}/${opts.rooms} rooms created`);
    },
  );
  await setDirect(ctx, me, other, dms);
  return { me, other, active: dms.slice(0, ACTIVE_ROOMS) };
}

export async function measureSlidingSync(ctx: ScenarioContext, fixture: SlidingSyncFixture, opts: SlidingSyncOptions, setupMs: number): Promise<SlidingSyncResult> {
  const { client, log } = ctx;
  const { me, other, active } = fixture;
  await pushCaughtUp(ctx, fixture);

  // (e1) First window: each request without `pos` opens a fresh connection (replacing the previous one).
  const warmup = 2;
  log(`(e) timing ${opts.firstWindows} first windows (+${warmup} warm-up)…`);
  const firstMs: number[] = [];
  let firstBytes = 0;
  let firstRooms = 0;
  let listCount = 0;
  for (let i = 0; i < warmup + opts.firstWindows; i++) {
    const res = await slidingSync(client, me, roomListRequest('room-list'));
    if (res.status !== 200) throw new Error(`(e) first window failed: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    if (i < warmup) continue;
    firstMs.push(res.ms);
    firstBytes = res.bytes;
    firstRooms = Object.keys(res.body.rooms ?? {}).length;
    listCount = res.body.lists?.all_rooms?.count ?? 0;
  }

  // (e2) Incremental: the other user sends one message (not timed), then the user asks with its `pos`.
  const request = roomListRequest('room-list');
  let pos = (await slidingSync(client, me, request)).body.pos;
  log(`(e) timing ${opts.samples} incremental requests after one new message…`);
  const incMs: number[] = [];
  let incrementalBytes = 0;
  let failures = 0;
  const incWarmup = ACTIVE_ROOMS;
  for (let i = 0; i < incWarmup + opts.samples; i++) {
    const roomId = active[i % active.length]!;
    const text = `incremental ${ctx.runId} #${i}`;
    await sendMessageOk(client, other, roomId, `e-inc-${ctx.runId}${i}`, text);
    const res = await slidingSync(client, me, request, { pos });
    if (res.status !== 200) throw new Error(`(e) incremental request failed: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    pos = res.body.pos;
    if (!carries(res.body, roomId, text)) {
      failures++;
      continue;
    }
    if (i < incWarmup) continue;
    incMs.push(res.ms);
    incrementalBytes = res.bytes;
  }

  // (e3) Long-poll wake-up: the request waits with a timeout; the other user sends; time to the answer.
  log(`(e) timing ${opts.samples} long-poll wake-ups…`);
  const wakeMs: number[] = [];
  for (let i = 0; i < warmup + opts.samples; i++) {
    const roomId = active[i % active.length]!;
    const text = `wake ${ctx.runId} #${i} ${Math.random().toString(36).slice(2)}`;
    let poll = slidingSync(client, me, request, { pos, timeout: 30_000 });
    poll.catch(() => {}); // awaited below; this only keeps a failure during the pause from being "unhandled"
    await sleep(opts.parkMs);
    const t0 = performance.now();
    const put = sendMessage(client, other, roomId, `e-wake-${ctx.runId}${i}`, text);
    put.catch(() => {});
    let arrived: number | undefined;
    try {
      for (let round = 0; round < 5 && arrived === undefined; round++) {
        const res = await poll;
        if (res.status !== 200) throw new Error(`HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        pos = res.body.pos;
        if (carries(res.body, roomId, text)) arrived = performance.now();
        else poll = slidingSync(client, me, request, { pos, timeout: 30_000 });
      }
      const putRes = await put;
      if (putRes.status !== 200) throw new Error(`send HTTP ${putRes.status}`);
    } catch (err) {
      failures++;
      if (failures <= 3) log(`(e) wake-up sample ${i} failed: ${(err as Error).message}`);
      if (failures >= 10) throw new Error('(e) too many failed samples, giving up');
      continue;
    }
    if (arrived === undefined) failures++;
    else if (i >= warmup) wakeMs.push(arrived - t0);
  }

  return {
    rooms: opts.rooms,
    messagesPerRoom: opts.messagesPerRoom,
    first: summarize(firstMs),
    firstBytes,
    firstRooms,
    listCount,
    incremental: summarize(incMs),
    incrementalBytes,
    wake: summarize(wakeMs),
    failures,
    setupMs,
  };
}

/** The DMs in the user's m.direct, as Element X sets it, so `is_dm` is what a real account shows. */
async function setDirect(ctx: ScenarioContext, me: BenchUser, other: BenchUser, dms: string[]): Promise<void> {
  const res = await ctx.client.request('PUT', `/_matrix/client/v3/user/${encodeURIComponent(me.userId)}/account_data/m.direct`, {
    token: me.accessToken,
    body: { [other.userId]: dms },
  });
  if (res.status !== 200) throw new Error(`(e) setting m.direct failed: HTTP ${res.status}`);
}

/**
 * The set-up's thousands of events are evaluated for push after their commits; measuring while that backlog
 * runs would time the backlog. A message from the other user into a DM notifies `me` once its turn comes, so
 * its arrival in GET /notifications says the backlog is done.
 */
async function pushCaughtUp(ctx: ScenarioContext, fixture: SlidingSyncFixture): Promise<void> {
  const { client, log } = ctx;
  const { me, other, active } = fixture;
  const room = active[0];
  if (!room) return;
  const started = performance.now();
  const marker = await sendMessageOk(client, other, room, 'e-push-marker', 'push marker');
  for (;;) {
    const res = await client.request<{ notifications?: Array<{ event: { event_id: string } }> }>('GET', '/_matrix/client/v3/notifications?limit=20', { token: me.accessToken });
    if (res.status === 200 && res.body.notifications?.some((n) => n.event.event_id === marker)) break;
    if (performance.now() - started > 10 * 60_000) {
      log('(e) push evaluation still behind after 10 minutes; measuring anyway');
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  log(`(e) push evaluation of the set-up caught up after ${Math.round(performance.now() - started)} ms (not measured)`);
}
