import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../helpers/homeserver.js';

/** Debian's package puts it here; `.ci/run` installs it. */
const NGIRCD_BIN = '/usr/sbin/ngircd';
const START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const OUTPUT_LINES_KEPT = 80;

export interface NgircdOptions {
  /** Defaults to a free 127.0.0.1 port. */
  port?: number;
  /** IRC server name; must contain a dot. Defaults to `irc.skjol.test`. */
  serverName?: string;
  /** Also listen with TLS on another free port, with a fresh self-signed certificate for 127.0.0.1. */
  tls?: boolean;
}

export interface IrcTestServer {
  host: '127.0.0.1';
  port: number;
  serverName: string;
  /** With `tls`: the TLS port and the certificate (its own CA) to trust. */
  tlsPort?: number;
  caFile?: string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process has exited. No-op when stopped. */
  stop(): Promise<void>;
  /** Starts ngircd again on the same port; resolves once it accepts connections. No-op when running. */
  start(): Promise<void>;
  /** stop() + start(), same port and config: every client is disconnected and all channel state is lost. */
  restart(): Promise<void>;
  /** stop() + removal of the temp dir; the server cannot be started again. */
  close(): Promise<void>;
}

// Process-exit cleanup registry: the only module-level state, so a dying test process leaves no ngircd behind.
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

/** Vitest stops its fork workers with SIGTERM, which skips 'exit' handlers, so signals need their own hook. */
function onFatalSignal(signal: NodeJS.Signals): void {
  killEverything();
  // Keep the default "die from this signal" behaviour when nobody else handles it.
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onFatalSignal);
    process.kill(process.pid, signal);
  }
}

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.once('exit', killEverything);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, onFatalSignal);
}

/**
 * ngircd config for a single local test server. Notes:
 * - As root ngircd always drops to "nobody" after binding (ServerUID 0 is refused), so nothing in the temp dir
 *   needs to be written by it afterwards: no PidFile (we hold the pid), no MotdFile.
 * - MaxPenaltyTime = 0 turns off the throttling that otherwise delays a client by 1 s whenever it sends more than
 *   3 commands in one read or more than 256 bytes in a second; tests and the bridge's many puppets would crawl.
 * - IncludeDir points at an empty dir so a host's /etc/ngircd/ngircd.conf.d cannot leak in.
 */
function ngircdConfig(serverName: string, port: number, includeDir: string, tls?: { port: number; cert: string; key: string }): string {
  const ssl = tls ? ['[SSL]', `\tCertFile = ${tls.cert}`, `\tKeyFile = ${tls.key}`, `\tPorts = ${tls.port}`] : [];
  return [
    ...ssl,
    '[Global]',
    `\tName = ${serverName}`,
    '\tInfo = Skjol bridge test server',
    '\tAdminInfo1 = Skjol test suite',
    '\tAdminInfo2 = 127.0.0.1',
    '\tAdminEMail = nobody@skjol.test',
    '\tListen = 127.0.0.1',
    `\tPorts = ${port}`,
    '\tMotdPhrase = Skjol bridge test server',
    '[Limits]',
    '\tMaxConnections = 0',
    '\tMaxConnectionsIP = 0',
    '\tMaxJoins = 0',
    '\tMaxNickLength = 30',
    '\tMaxPenaltyTime = 0',
    '[Options]',
    '\tDNS = no',
    '\tIdent = no',
    '\tPAM = no',
    '\tConnectIPv6 = no',
    `\tIncludeDir = ${includeDir}`,
    '',
  ].join('\n');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

class NgircdServer implements IrcTestServer {
  readonly host = '127.0.0.1' as const;
  tlsPort: number | undefined;
  caFile: string | undefined;
  private child: ChildProcess | undefined;
  private closed = false;
  private readonly output: string[] = [];

  constructor(
    readonly port: number,
    readonly serverName: string,
    private readonly dir: string,
    private readonly configFile: string,
  ) {}

  async start(): Promise<void> {
    if (this.closed) throw new Error('ngircd test server was closed; start a new one with startNgircd()');
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) return;
    // A previous run's "Now listening" line must not satisfy this start.
    this.output.length = 0;
    const child = spawn(NGIRCD_BIN, ['--nodaemon', '--passive', '--config', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    liveChildren.add(child);
    let exited: string | undefined;
    child.once('error', (err) => {
      exited ??= `could not run ${NGIRCD_BIN}: ${err.message}`;
      this.forget(child);
    });
    // 'close' (not 'exit') so ngircd's last log lines have been read before a failed start reports them.
    child.once('close', (code, signal) => {
      exited ??= `ngircd exited with ${signal ?? `code ${code}`}`;
      this.forget(child);
    });
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => this.remember(line));
    }

    // The log line proves *our* ngircd bound the port, not some other process that grabbed it first.
    const listening = `Now listening on [127.0.0.1]:${this.port} `;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`${exited} while starting on port ${this.port}:\n${this.tail()}`);
      if (this.output.some((line) => line.includes(listening)) && (await canConnect(this.port))) return;
      await sleep(50);
    }
    await this.stop();
    throw new Error(`ngircd did not accept connections on port ${this.port} within ${START_TIMEOUT_MS} ms:\n${this.tail()}`);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await gone;
      clearTimeout(killer);
    }
    this.forget(child);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async close(): Promise<void> {
    await this.stop();
    this.closed = true;
    rmSync(this.dir, { recursive: true, force: true });
    liveDirs.delete(this.dir);
  }

  private forget(child: ChildProcess): void {
    liveChildren.delete(child);
    if (this.child === child) this.child = undefined;
  }

  private remember(line: string): void {
    this.output.push(line);
    if (this.output.length > OUTPUT_LINES_KEPT) this.output.splice(0, this.output.length - OUTPUT_LINES_KEPT);
  }

  private tail(): string {
    return this.output.length ? this.output.join('\n') : '(ngircd printed nothing)';
  }
}

/** Starts a private ngircd on 127.0.0.1 with its own config in a fresh temp dir; resolves once it accepts connections. */
export async function startNgircd(options: NgircdOptions = {}): Promise<IrcTestServer> {
  if (!existsSync(NGIRCD_BIN)) {
    throw new Error(`${NGIRCD_BIN} not found: install Debian's ngircd (.ci/run does), e.g. apt-get install ngircd`);
  }
  installCleanup();
  const port = options.port ?? (await freePort());
  const serverName = options.serverName ?? 'irc.skjol.test';
  const dir = mkdtempSync(join(tmpdir(), 'skjol-ngircd-'));
  liveDirs.add(dir);
  const includeDir = join(dir, 'conf.d');
  mkdirSync(includeDir);
  const configFile = join(dir, 'ngircd.conf');
  let tls: { port: number; cert: string; key: string } | undefined;
  if (options.tls) {
    tls = { port: await freePort(), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-keyout', tls.key, '-out', tls.cert, '-days', '1', '-nodes', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  }
  writeFileSync(configFile, ngircdConfig(serverName, port, includeDir, tls));
  const server = new NgircdServer(port, serverName, dir, configFile);
  server.tlsPort = tls?.port;
  server.caFile = tls?.cert;
  try {
    await server.start();
  } catch (err) {
    await server.close();
    throw err;
  }
  return server;
}
