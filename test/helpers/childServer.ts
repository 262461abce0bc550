import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { freePort } from './homeserver.js';

/** `skjol serve` in its own process (as an admin runs it), for what only a real process shows: signals, exit. */
export class ChildServer {
  readonly baseUrl: string;
  private child: ChildProcess | undefined;
  private readonly output: string[] = [];

  private constructor(
    readonly port: number,
    readonly configPath: string,
  ) {
    this.baseUrl = `http://127.0.0.1:${port}`;
  }

  /** Writes a config (SQLite in `dir` unless `config.database` says otherwise) and starts the server. */
  static async start(dir: string, config: Record<string, unknown> = {}): Promise<ChildServer> {
    const port = await freePort();
    const configPath = join(dir, 'homeserver.yaml');
    writeFileSync(
      configPath,
      toYaml({
        server_name: 'localhost',
        listeners: [{ port, bind_addresses: ['127.0.0.1'], type: 'http' }],
        database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
        signing_key_path: join(dir, 'signing.key'),
        media_store_path: join(dir, 'media'),
        enable_registration: true,
        rc_enabled: false,
        log_level: 'info',
        ...config,
      }),
    );
    const server = new ChildServer(port, configPath);
    await server.spawn();
    return server;
  }

  private async spawn(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve', '--config', this.configPath], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const keep = (c: Buffer) => this.output.push(c.toString('utf8'));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    for (let i = 0; i < 1200; i++) {
      if (child.exitCode !== null) throw new Error(`server exited during start-up: ${this.log().slice(-2000)}`);
      if (await fetch(`${this.baseUrl}/_matrix/client/versions`).then((r) => r.ok, () => false)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('server did not start');
  }

  /** Everything the process wrote so far (its JSON log lines). */
  log(): string {
    return this.output.join('');
  }

  /** Sends `signal` and resolves with how the process ended and how long that took. */
  async signal(signal: NodeJS.Signals): Promise<{ code: number | null; ms: number }> {
    const child = this.child!;
    const started = Date.now();
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill(signal);
    const code = await exited;
    return { code, ms: Date.now() - started };
  }

  /** Stops the process if it is still running (test clean-up). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }
}
