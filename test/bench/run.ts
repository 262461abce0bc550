/**
 * Skjól benchmark suite: `npm run bench [-- --duration 20 --samples 200 --only a,b,c --postgres --cpu-prof]`.
 *
 * Starts a real server as a child process, drives it over loopback HTTP, prints a markdown table.
 * It reports numbers next to their targets and never fails on a time: the exit code only says whether
 * the benchmark itself could run.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { BenchClient } from './client.js';
import { summarizeProfile } from './profile.js';
import { runInitialSync, type InitialSyncResult } from './scenarios/initialSync.js';
import { runLatency, type LatencyResult } from './scenarios/latency.js';
import { runSlidingSync, type SlidingSyncResult } from './scenarios/slidingSync.js';
import { runThroughput, type ThroughputResult } from './scenarios/throughput.js';
import type { ScenarioContext } from './scenarios/context.js';
import { BenchServer, REPO_ROOT, sleep, type MemorySample } from './server.js';
import { fmtBytes, fmtInt, fmtMb, fmtMs, median } from './stats.js';

const USAGE = `Usage: npm run bench -- [options]

  --duration SEC     throughput run length in seconds (default 20)
  --samples N        send→sync latency samples (default 200)
  --only a,b,c,e     run only these scenarios: a throughput, b latency, c initial sync, e sliding sync
                     (RSS is always sampled)
  --clients N        throughput clients (default 50)        --rooms N   throughput rooms (default 10)
  --sync-rooms N     rooms of the initial-sync user (default 200)
  --ss-rooms N       rooms of the sliding-sync user (default 1000)
  --postgres         run against PostgreSQL (SKJOL_TEST_PG_HOST/PORT/USER/DATABASE, default postgres@127.0.0.1:5432/test)
  --tsx              run the server's TypeScript through tsx instead of compiled JS as npm start does
                     (tsx's loader thread adds ~35 MB RSS; bin/skjol.js uses tsx, so the default is what users get)
  --cpu-prof         write a V8 CPU profile of the server to a temp dir and print its hottest functions
`;

interface Flags {
  durationSec: number;
  samples: number;
  only: Set<string>;
  clients: number;
  rooms: number;
  syncRooms: number;
  ssRooms: number;
  postgres: boolean;
  cpuProf: boolean;
  compiled: boolean;
}

function parseFlags(argv: string[]): Flags | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      samples: { type: 'string' },
      only: { type: 'string' },
      clients: { type: 'string' },
      rooms: { type: 'string' },
      'sync-rooms': { type: 'string' },
      'ss-rooms': { type: 'string' },
      postgres: { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      tsx: { type: 'boolean', default: false },
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
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number between ${min} and ${max}`);
    return n;
  };
  const only = new Set((values.only ?? 'a,b,c,e').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
  for (const s of only) if (!['a', 'b', 'c', 'd', 'e'].includes(s)) throw new Error(`--only: unknown scenario "${s}" (a, b, c, e)`);
  return {
    durationSec: num('duration', values.duration, 20, 1, 600),
    samples: Math.round(num('samples', values.samples, 200, 1, 10_000)),
    only,
    clients: Math.round(num('clients', values.clients, 50, 1, 1000)),
    rooms: Math.round(num('rooms', values.rooms, 10, 1, 1000)),
    syncRooms: Math.round(num('sync-rooms', values['sync-rooms'], 200, 1, 5000)),
    ssRooms: Math.round(num('ss-rooms', values['ss-rooms'], 1000, 20, 10_000)),
    postgres: values.postgres ?? false,
    cpuProf: values['cpu-prof'] ?? false,
    compiled: !(values.tsx ?? false),
  };
}

const log = (message: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

let activeServer: BenchServer | undefined;

function installCleanup(): void {
  // `on`, not `once`: the tsx CLI relays a Ctrl-C to us a second time, and with no listener left tsx's own
  // hidden handler would exit at once, skipping the clean-up. A repeat after 2 s forces the issue.
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    const code = signal === 'SIGINT' ? 130 : 143;
    if (firstSignalAt) {
      if (Date.now() - firstSignalAt < 2000) return;
      log(`${signal} again: killing the server`);
      activeServer?.killNow();
      process.exit(code);
    }
    firstSignalAt = Date.now();
    log(`${signal}: stopping the server…`);
    void (activeServer?.stop() ?? Promise.resolve()).finally(() => process.exit(code));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Last resort if we die some other way: never leave a server or temp dir behind.
  process.once('exit', () => activeServer?.killNow());
}

interface Results {
  startupMs: number;
  idle?: MemorySample;
  afterLoad?: MemorySample;
  peak?: MemorySample;
  throughput?: ThroughputResult;
  latency?: LatencyResult;
  initialSync?: InitialSyncResult;
  slidingSync?: SlidingSyncResult;
  serverLogLines: number;
}

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  if (!flags) return 0;
  installCleanup();

  const pg = flags.postgres
    ? {
        host: process.env.SKJOL_TEST_PG_HOST ?? '127.0.0.1',
        port: Number(process.env.SKJOL_TEST_PG_PORT ?? 5432),
        user: process.env.SKJOL_TEST_PG_USER ?? 'postgres',
        database: process.env.SKJOL_TEST_PG_DATABASE ?? 'test',
        ...(process.env.SKJOL_TEST_PG_PASSWORD ? { password: process.env.SKJOL_TEST_PG_PASSWORD } : {}),
      }
    : undefined;
  const cpuProfDir = flags.cpuProf ? mkdtempSync(join(os.tmpdir(), 'skjol-benchsuite-prof-')) : undefined;

  log(`starting Skjól (${pg ? 'PostgreSQL' : 'SQLite'}${flags.compiled ? ', compiled JS' : ', via tsx'})…`);
  const { server, startupMs } = await BenchServer.start({ postgres: pg, cpuProfDir, compiled: flags.compiled });
  activeServer = server;
  log(`server pid ${server.pid} answered /versions after ${Math.round(startupMs)} ms at ${server.baseUrl}`);
  const client = new BenchClient(server.baseUrl);
  const ctx: ScenarioContext = { client, server, log, runId: `b${randomBytes(3).toString('hex')}_` };
  const results: Results = { startupMs, serverLogLines: 0 };

  try {
    await sleep(2000);
    results.idle = server.memory();
    log(`idle RSS ${fmtMb(results.idle?.rssKb)}`);

    if (flags.only.has('a')) {
      results.throughput = await runThroughput(ctx, {
        clients: flags.clients,
        rooms: flags.rooms,
        durationSec: flags.durationSec,
        warmupSec: Math.min(2, flags.durationSec / 5),
      });
      log(`(a) ${fmtInt(results.throughput.eventsPerSec)} events/s, ${results.throughput.errors} errors`);
      await sleep(3000);
      results.afterLoad = server.memory();
      log(`RSS after load ${fmtMb(results.afterLoad?.rssKb)}`);
    }
    if (flags.only.has('b')) {
      results.latency = await runLatency(ctx, { samples: flags.samples, parkMs: 15 });
      log(`(b) p50 ${fmtMs(results.latency.latency.p50)}`);
    }
    if (flags.only.has('c')) {
      results.initialSync = await runInitialSync(ctx, { rooms: flags.syncRooms, messagesPerRoom: 49, runs: 5, setupConcurrency: 16 });
      log(`(c) median ${fmtMs(results.initialSync.medianMs)}`);
    }
    if (flags.only.has('e')) {
      results.slidingSync = await runSlidingSync(ctx, {
        rooms: flags.ssRooms,
        messagesPerRoom: 2,
        firstWindows: 20,
        samples: Math.min(flags.samples, 200),
        setupConcurrency: 16,
        parkMs: 15,
      });
      const e = results.slidingSync;
      log(`(e) first window p50 ${fmtMs(e.first.p50)}, incremental p50 ${fmtMs(e.incremental.p50)}, wake-up p50 ${fmtMs(e.wake.p50)}`);
    }
    results.peak = server.memory();
    results.serverLogLines = server.logLines;
    // What the server complained about, so a count in the table can be looked into.
    if (server.logLines) log(`last server log lines:\n${server.recentOutput().split('\n').slice(-5).join('\n')}`);
  } catch (err) {
    log(`benchmark failed: ${(err as Error).stack ?? String(err)}`);
    if (server.recentOutput()) log(`last server output:\n${server.recentOutput()}`);
    client.close();
    await server.stop();
    activeServer = undefined;
    return 1;
  }

  client.close();
  log('stopping the server…');
  await server.stop();
  activeServer = undefined;

  process.stdout.write(report(flags, results, `${pg ? 'PostgreSQL' : 'SQLite'}, server run ${flags.compiled ? 'compiled, as npm start runs it' : 'through tsx'}`));
  if (cpuProfDir) printProfile(cpuProfDir);
  return 0;
}

function report(flags: Flags, r: Results, dialect: string): string {
  const rows: Array<[string, string, string]> = [];
  rows.push(['Server start-up (spawn → first /versions answer)', fmtMs(r.startupMs), '—']);
  const t = r.throughput;
  if (t) {
    const errs = t.errors ? `, ${fmtInt(t.errors)} errors (${Object.entries(t.errorKinds).map(([k, v]) => `${k}: ${v}`).join('; ')})` : ', 0 errors';
    rows.push([
      `(a) Throughput: ${t.clients} clients → ${t.rooms} rooms, ${t.measuredSec.toFixed(0)} s measured`,
      `**${fmtInt(t.eventsPerSec)} events/s** (${fmtInt(t.sent)} sent${errs})`,
      '≥ 1,500 events/s',
    ]);
    rows.push(['(a) PUT /send latency under load p50 / p99 / max', `${fmtMs(t.sendLatency.p50)} / ${fmtMs(t.sendLatency.p99)} / ${fmtMs(t.sendLatency.max)}`, '—']);
  }
  const l = r.latency;
  if (l) {
    rows.push([`(b) Send → long-poll /sync arrival p50 (${l.latency.n} samples)`, `**${fmtMs(l.latency.p50)}**`, 'p50 ≤ 5 ms']);
    rows.push(['(b) … p90 / p99 / max', `${fmtMs(l.latency.p90)} / ${fmtMs(l.latency.p99)} / ${fmtMs(l.latency.max)}`, '—']);
    rows.push(['(b) PUT /send alone (idle server) p50 / p99', `${fmtMs(l.putLatency.p50)} / ${fmtMs(l.putLatency.p99)}`, '—']);
    if (l.failures || l.extraWakeups) rows.push(['(b) failed samples / early wake-ups', `${l.failures} / ${l.extraWakeups}`, '—']);
  }
  const s = r.initialSync;
  if (s) {
    rows.push([
      `(c) Initial /sync, ${s.rooms} rooms × ${s.messagesPerRoom + 1}+ events, median of ${s.timesMs.length}`,
      `**${fmtMs(s.medianMs)}**`,
      '≤ 300 ms',
    ]);
    rows.push(['(c) … max / response size', `${fmtMs(s.maxMs)} / ${fmtBytes(s.bytes)} (${s.roomsInResponse} rooms, ${s.timelineEvents} timeline events)`, '—']);
  }
  const e = r.slidingSync;
  if (e) {
    const p = (x: { p50: number; p95: number }) => `**${fmtMs(x.p50)}** / ${fmtMs(x.p95)}`;
    rows.push([
      `(e) Sliding sync, first window of a user in ${fmtInt(e.rooms)} rooms ([[0,19]], timeline_limit 1, Element X's required_state), p50 / p95 of ${e.first.n} fresh connections`,
      p(e.first),
      '≤ 100 ms',
    ]);
    rows.push(['(e) … response size / rooms / list count', `${fmtBytes(e.firstBytes)} / ${e.firstRooms} / ${fmtInt(e.listCount)}`, '—']);
    rows.push([`(e) Sliding sync, incremental request (pos) after one new message, p50 / p95 of ${e.incremental.n}`, p(e.incremental), '≤ 10 ms']);
    rows.push([`(e) Send → long-polling sliding sync answer, p50 / p95 of ${e.wake.n}`, p(e.wake), '—']);
    if (e.failures) rows.push(['(e) failed samples (answer without the message)', fmtInt(e.failures), '—']);
  }
  rows.push(['(d) RSS idle (2 s after start-up)', `**${fmtMb(r.idle?.rssKb)}**`, '≤ 80 MB']);
  if (t) {
    const rss = t.memory.map((m) => m.rssKb);
    rows.push([
      `(d) RSS under load (median / max of ${rss.length} samples)`,
      rss.length ? `${fmtMb(median(rss))} / ${fmtMb(Math.max(...rss))}` : 'n/a',
      '—',
    ]);
    rows.push(['(d) RSS after load (3 s later)', fmtMb(r.afterLoad?.rssKb), '—']);
    rows.push([`(d) Peak RSS before load, after registering ${t.clients} users (VmHWM)`, fmtMb(t.afterSetup?.hwmKb), '—']);
  }
  rows.push(['(d) Peak RSS of the whole run (VmHWM)', fmtMb(r.peak?.hwmKb), '—']);
  if (r.serverLogLines) rows.push(['Server lines logged at warn or above', fmtInt(r.serverLogLines), '—']);

  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout
  }
  const setup = [
    t ? `throughput setup ${fmtMs(t.setupMs)}` : '',
    s ? `initial-sync setup ${fmtMs(s.setupMs)}` : '',
    e ? `sliding-sync setup ${fmtMs(e.setupMs)}` : '',
  ].filter(Boolean);
  const esc = (x: string) => x.replace(/\|/g, '\\|');
  return [
    '',
    '## Skjól benchmark',
    '',
    '| metric | result | target |',
    '|---|---|---|',
    ...rows.map(([m, v, target]) => `| ${esc(m)} | ${esc(v)} | ${target} |`),
    '',
    `Load average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}. Machine: Node ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ` +
      `${os.type()} ${os.release()} ${os.arch()}, ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB RAM. ` +
      `Database: ${dialect}. Commit ${commit} (working tree as is). Client and server share the machine.`,
    `Flags: duration ${flags.durationSec} s, samples ${flags.samples}, scenarios ${[...flags.only].join(',')}.` +
      (setup.length ? ` Unmeasured setup: ${setup.join(', ')}.` : ''),
    '',
  ].join('\n');
}

function printProfile(dir: string): void {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) {
    log(`no CPU profile written in ${dir} (the server did not exit cleanly?)`);
    return;
  }
  const path = join(dir, files[0]!);
  const { byFunction, byFile, totalMs } = summarizeProfile(path, REPO_ROOT, 25);
  const line = (x: { name: string; selfMs: number; share: number }) =>
    `| ${x.name.replace(/\|/g, '\\|')} | ${fmtInt(x.selfMs)} ms | ${(x.share * 100).toFixed(1)}% |`;
  process.stdout.write(
    [
      `### Server CPU profile (${fmtInt(totalMs)} ms sampled) — ${path}`,
      '',
      '| self time by file / package | ms | share |',
      '|---|---|---|',
      ...byFile.slice(0, 15).map(line),
      '',
      '| self time by function | ms | share |',
      '|---|---|---|',
      ...byFunction.map(line),
      '',
    ].join('\n'),
  );
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (err: unknown) => {
    log(`bench: ${(err as Error).message}`);
    await activeServer?.stop();
    activeServer = undefined;
    process.exitCode = 1;
  },
);
