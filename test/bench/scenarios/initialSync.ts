/**
 * (c) Initial /sync of a user in many rooms with many events each. Setup is concurrent and not measured;
 * then a few full initial syncs (no since, default filter) are timed.
 */
import { performance } from 'node:perf_hooks';
import { createRoom, pool, register, sendMessageOk, sync } from '../client.js';
import { median } from '../stats.js';
import type { ScenarioContext } from './context.js';

export interface InitialSyncOptions {
  rooms: number;
  messagesPerRoom: number;
  runs: number;
  /** Rooms being filled at once during setup. */
  setupConcurrency: number;
}

export interface InitialSyncResult {
  rooms: number;
  messagesPerRoom: number;
  timesMs: number[];
  medianMs: number;
  maxMs: number;
  bytes: number;
  roomsInResponse: number;
  timelineEvents: number;
  setupMs: number;
}

export async function runInitialSync(ctx: ScenarioContext, opts: InitialSyncOptions): Promise<InitialSyncResult> {
  const { client, log } = ctx;
  const setupStart = performance.now();
  const user = await register(client, `${ctx.runId}c_heavy`);
  log(`(c) creating ${opts.rooms} rooms with ${opts.messagesPerRoom} messages each (setup, not measured)…`);
  let done = 0;
  await pool(
    Array.from({ length: opts.rooms }, (_, i) => i),
    opts.setupConcurrency,
    async (r) => {
      const roomId = await createRoom(client, user, { name: `bench-sync-${r}`, topic: `room ${r} of the initial-sync benchmark` });
      for (let m = 0; m < opts.messagesPerRoom; m++) {
        await sendMessageOk(client, user, roomId, `c-${r}-${m}`, `room ${r} message ${m}: the quick brown fox jumps over the lazy dog`);
      }
      done++;
      if (done % 50 === 0) log(`(c)   ${done}/${opts.rooms} rooms filled`);
    },
  );
  const setupMs = performance.now() - setupStart;

  log(`(c) timing ${opts.runs} initial syncs…`);
  const timesMs: number[] = [];
  let bytes = 0;
  let roomsInResponse = 0;
  let timelineEvents = 0;
  for (let i = 0; i < opts.runs; i++) {
    const res = await sync(client, user, {}, 120_000);
    if (res.status !== 200) throw new Error(`(c) initial /sync failed: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    timesMs.push(res.ms);
    bytes = res.bytes;
    const joined = res.body.rooms?.join ?? {};
    roomsInResponse = Object.keys(joined).length;
    timelineEvents = Object.values(joined).reduce((acc, r) => acc + (r.timeline?.events?.length ?? 0), 0);
  }
  return {
    rooms: opts.rooms,
    messagesPerRoom: opts.messagesPerRoom,
    timesMs,
    medianMs: median(timesMs),
    maxMs: Math.max(...timesMs),
    bytes,
    roomsInResponse,
    timelineEvents,
    setupMs,
  };
}
