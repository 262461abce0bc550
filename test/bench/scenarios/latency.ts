/**
 * (b) Latency: user B long-polls /sync; user A sends a message with a unique body; we time from just before
 * A's PUT to the moment B's /sync response carrying that body has fully arrived.
 */
import { performance } from 'node:perf_hooks';
import { createRoom, joinRoom, register, sendMessage, sync, syncFilter, type SyncBody } from '../client.js';
import { sleep } from '../server.js';
import { summarize, type Summary } from '../stats.js';
import type { ScenarioContext } from './context.js';

export interface LatencyOptions {
  samples: number;
  /** Pause after starting B's long-poll, so it is parked in the server before A sends. */
  parkMs: number;
}

export interface LatencyResult {
  latency: Summary;
  putLatency: Summary;
  /** Samples where B's long-poll returned before the message arrived (woken by something else). */
  extraWakeups: number;
  failures: number;
}

/** Bounds a single sample: one message must show up within this long, or the sample is a failure. */
const SAMPLE_LIMIT_MS = 30_000;

function containsBody(body: SyncBody | undefined, roomId: string, text: string): boolean {
  const events = body?.rooms?.join?.[roomId]?.timeline?.events ?? [];
  return events.some((e) => e.type === 'm.room.message' && e.content?.body === text);
}

export async function runLatency(ctx: ScenarioContext, opts: LatencyOptions): Promise<LatencyResult> {
  const { client, log } = ctx;
  log('(b) setting up sender and receiver…');
  const a = await register(client, `${ctx.runId}b_sender`);
  const b = await register(client, `${ctx.runId}b_receiver`);
  const roomId = await createRoom(client, a, { name: 'bench-latency' });
  await joinRoom(client, b, roomId);
  const filter = await syncFilter(client, b, {
    room: { rooms: [roomId], timeline: { limit: 10 }, state: { lazy_load_members: true }, ephemeral: { types: [] }, account_data: { types: [] } },
    presence: { types: [] },
    account_data: { types: [] },
  });
  const first = await sync(client, b, { filter, timeout: 0 });
  if (first.status !== 200) throw new Error(`(b) initial /sync failed: HTTP ${first.status} ${JSON.stringify(first.body).slice(0, 300)}`);
  let since = first.body.next_batch;

  // A few unmeasured rounds so the first samples are not JIT/connection warm-up.
  const warmup = Math.min(10, Math.max(2, Math.floor(opts.samples / 20)));
  log(`(b) ${warmup} warm-up + ${opts.samples} samples…`);
  const latencies: number[] = [];
  const puts: number[] = [];
  let extraWakeups = 0;
  let failures = 0;
  for (let i = 0; i < warmup + opts.samples; i++) {
    const text = `latency probe ${ctx.runId} #${i} ${Math.random().toString(36).slice(2)}`;
    let poll = sync(client, b, { since, filter, timeout: 30_000 });
    poll.catch(() => {}); // awaited below; this only keeps a failure during the pause from being "unhandled"
    await sleep(opts.parkMs);
    const t0 = performance.now();
    const put = sendMessage(client, a, roomId, `lat-${i}`, text).then((r) => {
      puts.push(r.ms);
      return r;
    });
    put.catch(() => {}); // awaited below, after the /sync
    let arrived: number | undefined;
    try {
      const deadline = t0 + SAMPLE_LIMIT_MS;
      while (performance.now() < deadline) {
        const res = await poll;
        if (res.status !== 200) throw new Error(`/sync HTTP ${res.status}`);
        since = res.body.next_batch;
        if (containsBody(res.body, roomId, text)) {
          arrived = performance.now();
          break;
        }
        extraWakeups++;
        poll = sync(client, b, { since, filter, timeout: 30_000 });
      }
      const putRes = await put;
      if (putRes.status !== 200) throw new Error(`send HTTP ${putRes.status}`);
    } catch (err) {
      failures++;
      if (failures <= 3) log(`(b) sample ${i} failed: ${(err as Error).message}`);
      if (failures >= 10) throw new Error('(b) too many failed samples, giving up');
      continue;
    }
    if (arrived === undefined) {
      failures++;
      continue;
    }
    if (i >= warmup) latencies.push(arrived - t0);
  }
  return { latency: summarize(latencies), putLatency: summarize(puts.slice(warmup)), extraWakeups, failures };
}
