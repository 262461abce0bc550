import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const STOP_GRACE_MS = 5_000;
const OUTPUT_LINES_KEPT = 120;

// Process-exit cleanup registry: the only module-level state, so a dying test process leaves no daemon behind.
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let cleanupInstalled = false;

function killEverything(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
  liveChildren.clear();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

function onFatalSignal(signal: NodeJS.Signals): void {
  killEverything();
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onFatalSignal);
    process.kill(process.pid, signal);
  }
}

/** A temp dir removed when the test process dies, even by SIGTERM. */
export function trackDir(dir: string): void {
  if (!cleanupInstalled) {
    cleanupInstalled = true;
    process.once('exit', killEverything);
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, onFatalSignal);
  }
  liveDirs.add(dir);
}

export function forgetDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A foreground daemon (an IRC server, IRC services) the tests start, stop and restart with the same arguments. */
export class Daemon {
  private child: ChildProcess | undefined;
  private readonly output: string[] = [];

  constructor(
    private readonly name: string,
    private readonly bin: string,
    private readonly args: string[],
    /** Started once this line was printed (and `port`, if given, accepts connections). */
    private readonly ready: (line: string) => boolean,
    private readonly port?: number,
    private readonly timeoutMs = 15_000,
  ) {}

  get running(): boolean {
    return Boolean(this.child && this.child.exitCode === null && this.child.signalCode === null);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.output.length = 0;
    const child = spawn(this.bin, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    liveChildren.add(child);
    let exited: string | undefined;
    child.once('error', (err) => {
      exited ??= `could not run ${this.bin}: ${err.message}`;
      this.forget(child);
    });
    child.once('close', (code, signal) => {
      exited ??= `${this.name} exited with ${signal ?? `code ${code}`}`;
      this.forget(child);
    });
    for (const stream of [child.stdout, child.stderr]) if (stream) createInterface({ input: stream }).on('line', (line) => this.remember(line));
    const deadline = Date.now() + this.timeoutMs;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`${exited} while starting:\n${this.tail()}`);
      if (this.output.some(this.ready) && (this.port === undefined || (await canConnect(this.port)))) return;
      await sleep(50);
    }
    await this.stop();
    throw new Error(`${this.name} did not start within ${this.timeoutMs} ms:\n${this.tail()}`);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (this.running) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await gone;
      clearTimeout(killer);
    }
    this.forget(child);
  }

  /** The last lines it printed (for failure messages). */
  tail(): string {
    return this.output.length ? this.output.join('\n') : `(${this.name} printed nothing)`;
  }

  /** Waits for a printed line (e.g. services finished linking). */
  async waitForLine(match: (line: string) => boolean, what: string, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.output.some(match)) {
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${what} within ${ms} ms:\n${this.tail()}`);
      await sleep(50);
    }
  }

  private forget(child: ChildProcess): void {
    liveChildren.delete(child);
    if (this.child === child) this.child = undefined;
  }

  private remember(line: string): void {
    this.output.push(line);
    if (this.output.length > OUTPUT_LINES_KEPT) this.output.splice(0, this.output.length - OUTPUT_LINES_KEPT);
  }
}
