/**
 * (a) Throughput: N clients send m.room.message into R public rooms as fast as they can,
 * each with exactly one request in flight, for a fixed duration. Also samples the server's RSS.
 */
import { performance } from 'node:perf_hooks';
import { createRoom, joinRoom, pool, registerMany, sendMessage } from '../client.js';
import type { MemorySample } from '../server.js';
import { sleep } from '../server.js';
import { summarize, type Summary } from '../stats.js';
import type { ScenarioContext } from './context.js';

export interface ThroughputOptions {
  clients: number;
  rooms: number;
  durationSec: number;
  /** Leading part of the run not counted (JIT, caches, connection set-up). */
  warmupSec: number;
}

export interface ThroughputResult {
  clients: number;
  rooms: number;
  measuredSec: number;
  eventsPerSec: number;
  sent: number;
  errors: number;
  errorKinds: Record<string, number>;
  sendLatency: Summary;
  memory: MemorySample[];
  /** Memory once users are registered and rooms joined (registration hashes passwords with scrypt). */
  afterSetup: MemorySample | undefined;
  setupMs: number;
}

/** Hard cap on requests per client, so a server that answers errors instantly cannot spin us forever. */
const MAX_REQUESTS_PER_CLIENT = 2_000_000;

export async function runThroughput(ctx: ScenarioContext, opts: ThroughputOptions): Promise<ThroughputResult> {
  const { client, log } = ctx;
  const setupStart = performance.now();
  log(`(a) registering ${opts.clients} users…`);
  const users = await registerMany(client, `${ctx.runId}a`, opts.clients);
  const perRoom = Math.ceil(opts.clients / opts.rooms);
  log(`(a) creating ${opts.rooms} rooms, ${perRoom} members each…`);
  const roomOf: string[] = new Array(opts.clients);
  const owners = Array.from({ length: opts.rooms }, (_, r) => r * perRoom).filter((i) => i < opts.clients);
  const roomIds = await pool(owners, 5, (ownerIndex) => createRoom(client, users[ownerIndex]!, { name: `bench-a-${ownerIndex}` }));
  users.forEach((_, i) => (roomOf[i] = roomIds[Math.floor(i / perRoom)]!));
  await pool(
    users.map((u, i) => ({ u, i })).filter(({ i }) => i % perRoom !== 0),
    10,
    ({ u, i }) => joinRoom(client, u, roomOf[i]!),
  );
  const setupMs = performance.now() - setupStart;
  const afterSetup = ctx.server.memory();

  log(`(a) sending for ${opts.durationSec} s (first ${opts.warmupSec} s not counted)…`);
  const start = performance.now();
  const warmEnd = start + opts.warmupSec * 1000;
  const end = start + opts.durationSec * 1000;
  let counted = 0;
  let sent = 0;
  let errors = 0;
  const errorKinds: Record<string, number> = {};
  const latencies: number[] = [];
  const memory: MemorySample[] = [];

  const sampler = (async () => {
    while (performance.now() < end) {
      const m = ctx.server.memory();
      if (m) memory.push(m);
      await sleep(250);
    }
  })();

  const worker = async (index: number) => {
    const user = users[index]!;
    const roomId = roomOf[index]!;
    for (let seq = 0; seq < MAX_REQUESTS_PER_CLIENT && performance.now() < end; seq++) {
      const t0 = performance.now();
      let failure: string | undefined;
      try {
        const res = await sendMessage(client, user, roomId, `bench-${index}-${seq}`, `message ${seq} from client ${index}`);
        if (res.status !== 200) failure = `HTTP ${res.status} ${(res.body as { errcode?: string } | undefined)?.errcode ?? ''}`.trim();
      } catch (err) {
        failure = (err as Error).message.slice(0, 80);
      }
      const t1 = performance.now();
      if (failure) {
        errors++;
        errorKinds[failure] = (errorKinds[failure] ?? 0) + 1;
        await sleep(10); // do not turn a failing server into a busy loop
        continue;
      }
      sent++;
      // Count requests that completed inside the measured window (after warm-up, before the end).
      if (t1 >= warmEnd && t1 <= end) {
        counted++;
        latencies.push(t1 - t0);
      }
    }
  };
  await Promise.all(users.map((_, i) => worker(i)));
  await sampler;
  const measuredSec = (end - warmEnd) / 1000;
  return {
    clients: opts.clients,
    rooms: roomIds.length,
    measuredSec,
    eventsPerSec: counted / measuredSec,
    sent,
    errors,
    errorKinds,
    sendLatency: summarize(latencies),
    memory,
    afterSetup,
    setupMs,
  };
}
