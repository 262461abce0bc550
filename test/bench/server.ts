/**
 * Runs a real Skjól as a separate child process for the benchmark: fresh temp dir, fresh SQLite file
 * (or a fresh PostgreSQL schema), free loopback port. Reads the child's memory from /proc.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { stringify as toYaml } from 'yaml';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface PgOptions {
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
}

export interface ServerOptions {
  postgres?: PgOptions;
  /** Directory to write a V8 CPU profile of the server into (node --cpu-prof); written on clean exit. */
  cpuProfDir?: string;
  /**
   * Run JavaScript compiled (tsc, no type check) into the temp dir instead of the TypeScript sources through
   * tsx. tsx's loader thread alone costs ~35 MB of RSS, so this shows what a compiled deployment would use.
   */
  compiled?: boolean;
}

export interface MemorySample {
  /** Resident set size, kB. */
  rssKb: number;
  /** Peak resident set size since start ("high water mark"), kB. */
  hwmKb: number;
}

export class BenchServer {
  private exited = false;
  private exitInfo = '';
  private readonly tail: string[] = [];
  private stopping: Promise<void> | undefined;
  /** Lines the server logged at warn or above (log_level is warn). */
  logLines = 0;

  private constructor(
    private current: ChildProcess,
    readonly baseUrl: string,
    readonly dir: string,
    readonly pgSchema: string | undefined,
    private readonly pg: PgOptions | undefined,
    public spawnedAt: number,
    private readonly launch: () => ChildProcess,
  ) {
    this.watch(current);
  }

  private watch(child: ChildProcess): void {
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        this.logLines++;
        this.tail.push(line.length > 500 ? `${line.slice(0, 500)}…` : line);
        if (this.tail.length > 40) this.tail.shift();
      }
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('exit', (code, signal) => {
      if (child !== this.current) return;
      this.exited = true;
      this.exitInfo = signal ? `signal ${signal}` : `code ${code}`;
    });
  }

  get child(): ChildProcess {
    return this.current;
  }

  /** kill -9: the server dies mid-write; its database and temp dir stay for `restart`. */
  async crash(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.current.once('exit', () => r()));
    this.current.kill('SIGKILL');
    await gone;
  }

  /** Starts the server again on the same configuration and database; returns ms until it answered. */
  async restart(): Promise<number> {
    if (!this.exited) throw new Error('restart: the server is still running');
    this.exited = false;
    this.spawnedAt = performance.now();
    this.current = this.launch();
    this.watch(this.current);
    return this.waitReady(90_000);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** The last lines the server printed (for diagnosing a failed run). */
  recentOutput(): string {
    return this.tail.join('\n');
  }

  static async start(options: ServerOptions = {}): Promise<{ server: BenchServer; startupMs: number }> {
    const dir = mkdtempSync(join(tmpdir(), 'skjol-benchsuite-'));
    const port = await freePort();
    const pgSchema = options.postgres ? `skjol_bench_${randomBytes(5).toString('hex')}` : undefined;
    const database = options.postgres
      ? { name: 'postgres', args: { ...options.postgres, schema: pgSchema, cp_max: 10 } }
      : { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } };
    const config = {
      server_name: 'localhost',
      listeners: [{ port, bind_addresses: ['127.0.0.1'], type: 'http' }],
      database,
      signing_key_path: join(dir, 'signing.key'),
      media_store_path: join(dir, 'media_store'),
      enable_registration: true,
      enable_registration_without_verification: true,
      rc_enabled: false,
      log_level: 'warn',
    };
    const configPath = join(dir, 'homeserver.yaml');
    writeFileSync(configPath, toYaml(config));

    const nodeArgs: string[] = [];
    let entry = 'src/main.ts';
    let cwd = REPO_ROOT;
    if (options.compiled) {
      cwd = await compileServer(join(dir, 'build'));
      entry = 'src/main.js';
      // The same V8 flag `npm start` uses.
      nodeArgs.push('--max-semi-space-size=2');
    } else {
      nodeArgs.push('--import', 'tsx');
    }
    if (options.cpuProfDir) nodeArgs.push('--cpu-prof', '--cpu-prof-dir', options.cpuProfDir);
    const spawnedAt = performance.now();
    // process.execPath directly (not npx/tsx's wrapper) so the pid we watch is the server itself.
    const launch = () =>
      spawn(process.execPath, [...nodeArgs, entry, 'serve', '--config', configPath], {
        cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NODE_ENV: 'production' },
      });
    const server = new BenchServer(launch(), `http://127.0.0.1:${port}`, dir, pgSchema, options.postgres, spawnedAt, launch);
    try {
      const startupMs = await server.waitReady(90_000);
      return { server, startupMs };
    } catch (err) {
      await server.stop();
      throw err;
    }
  }

  /** Polls GET /_matrix/client/versions until it answers 200; returns ms since spawn. */
  private async waitReady(limitMs: number): Promise<number> {
    const deadline = performance.now() + limitMs;
    while (performance.now() < deadline) {
      if (this.exited) throw new Error(`server exited during start-up (${this.exitInfo}):\n${this.recentOutput()}`);
      try {
        const res = await fetch(`${this.baseUrl}/_matrix/client/versions`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return performance.now() - this.spawnedAt;
      } catch {
        // not listening yet
      }
      await sleep(25);
    }
    throw new Error(`server did not answer /versions within ${limitMs} ms:\n${this.recentOutput()}`);
  }

  /** VmRSS and VmHWM of the server process, from /proc (Linux only; undefined elsewhere or once exited). */
  memory(): MemorySample | undefined {
    if (this.exited) return undefined;
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? Number.NaN);
      return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
    } catch {
      return undefined;
    }
  }

  /** SIGTERM (clean exit writes the CPU profile), SIGKILL after 10 s; then removes the temp dir / schema. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (!this.exited) {
        const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
        this.child.kill('SIGTERM');
        const killed = await Promise.race([gone.then(() => false), sleep(10_000).then(() => true)]);
        if (killed && !this.exited) {
          this.child.kill('SIGKILL');
          await Promise.race([gone, sleep(2000)]);
        }
      }
      rmSync(this.dir, { recursive: true, force: true });
      if (this.pg && this.pgSchema) await dropSchema(this.pg, this.pgSchema);
    })();
    return this.stopping;
  }

  /** Synchronous last resort (process 'exit' handler): kill the child, remove the temp dir. */
  killNow(): void {
    if (!this.exited) this.child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Emits src/main.ts and everything it imports as JS into `outDir` (tsc --noCheck); returns outDir. */
async function compileServer(outDir: string): Promise<string> {
  const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = [
    tsc, join(REPO_ROOT, 'src', 'main.ts'),
    '--outDir', outDir, '--rootDir', REPO_ROOT,
    '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022',
    '--esModuleInterop', '--skipLibCheck', '--resolveJsonModule', '--types', 'node', '--noCheck',
  ];
  try {
    await promisify(execFile)(process.execPath, args, { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stdout?: string; message: string };
    throw new Error(`compiling the server failed: ${e.stdout?.slice(0, 2000) || e.message}`);
  }
  writeFileSync(join(outDir, 'package.json'), JSON.stringify({ type: 'module' }));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(outDir, 'node_modules'), 'dir');
  return outDir;
}

async function dropSchema(pg: PgOptions, schema: string): Promise<void> {
  const { default: knexFactory } = await import('knex');
  const admin = knexFactory({ client: 'pg', connection: pg });
  try {
    await admin.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
  } catch (err) {
    process.stderr.write(`bench: could not drop schema ${schema}: ${(err as Error).message}\n`);
  } finally {
    await admin.destroy();
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
