// A real Synapse for the interop tests: its own minimal homeserver.yaml (with `cert`, an HTTPS federation
// listener with a certificate from the federation tests' CA, which it also trusts), started and stopped by the test.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../helpers/homeserver.js';
import type { TestCert } from '../federation/tls.js';

/** The Synapse virtualenv's python from SKJOL_SYNAPSE_PYTHON, or why the interop tests are skipped. */
export function synapsePython(): { python: string } | { skip: string } {
  const python = process.env.SKJOL_SYNAPSE_PYTHON;
  if (!python) return { skip: 'SKJOL_SYNAPSE_PYTHON is not set (no Synapse on this machine, as in CI)' };
  if (!existsSync(python)) return { skip: `SKJOL_SYNAPSE_PYTHON=${python} does not exist` };
  return { python };
}

export interface SynapseServer {
  /** 127.0.0.1:<federation port>, as the federation tests name servers. */
  serverName: string;
  /** The plain HTTP client listener. */
  baseUrl: string;
  dir: string;
  /** The last lines of Synapse's log, for failure messages. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

export interface SynapseOptions {
  python: string;
  dir: string;
  /** With both: an HTTPS federation listener; without: client API only (client-side comparisons). */
  cert?: TestCert;
  caPath?: string;
}

const relaxed = '{ per_second: 10000, burst_count: 10000 }';

/** Synapse's config: only what these tests need, every rate limit out of the way, loopback federation allowed. */
function homeserverYaml(o: SynapseOptions, serverName: string, clientPort: number, fedPort: number): string {
  const federation =
    o.cert && o.caPath
      ? `  - port: ${fedPort}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: true
    x_forwarded: false
    resources: [{ names: [federation], compress: false }]
tls_certificate_path: "${o.cert.certificatePath}"
tls_private_key_path: "${o.cert.privateKeyPath}"
federation_verify_certificates: true
federation_custom_ca_list: ["${o.caPath}"]
`
      : '';
  return `server_name: "${serverName}"
pid_file: "${join(o.dir, 'homeserver.pid')}"
listeners:
  - port: ${clientPort}
    bind_addresses: ['127.0.0.1']
    type: http
    x_forwarded: false
    resources: [{ names: [client], compress: false }]
${federation}ip_range_blacklist: []
ip_range_whitelist: ['127.0.0.0/8', '::1/128']
database:
  name: sqlite3
  args: { database: "${join(o.dir, 'homeserver.db')}" }
log_config: "${join(o.dir, 'log.config')}"
media_store_path: "${join(o.dir, 'media_store')}"
signing_key_path: "${join(o.dir, 'signing.key')}"
report_stats: false
enable_metrics: false
enable_registration: true
enable_registration_without_verification: true
registration_shared_secret: "interop-secret"
macaroon_secret_key: "interop-macaroon-secret"
form_secret: "interop-form-secret"
trusted_key_servers: []
suppress_key_server_warning: true
url_preview_enabled: false
require_auth_for_profile_requests: false
rc_message: ${relaxed}
rc_registration: ${relaxed}
rc_login:
  address: ${relaxed}
  account: ${relaxed}
  failed_attempts: ${relaxed}
rc_joins:
  local: ${relaxed}
  remote: ${relaxed}
rc_joins_per_room: ${relaxed}
rc_invites:
  per_room: ${relaxed}
  per_user: ${relaxed}
  per_issuer: ${relaxed}
rc_media_create: ${relaxed}
rc_federation: { window_size: 1000, sleep_limit: 10000, sleep_delay: 0, reject_limit: 10000, concurrent: 100 }
`;
}

function logConfig(dir: string): string {
  return `version: 1
formatters:
  precise: { format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s' }
handlers:
  file: { class: logging.FileHandler, formatter: precise, filename: "${join(dir, 'homeserver.log')}", encoding: utf8 }
loggers:
  synapse.storage.SQL: { level: WARNING }
  twisted: { level: WARNING }
root: { level: INFO, handlers: [file] }
disable_existing_loggers: false
`;
}

/** Writes the config, generates the signing key, starts Synapse and waits until its client API answers. */
export async function startSynapse(o: SynapseOptions): Promise<SynapseServer> {
  mkdirSync(o.dir, { recursive: true });
  const clientPort = await freePort();
  const fedPort = await freePort();
  const serverName = `127.0.0.1:${fedPort}`;
  const config = join(o.dir, 'homeserver.yaml');
  writeFileSync(config, homeserverYaml(o, serverName, clientPort, fedPort));
  writeFileSync(join(o.dir, 'log.config'), logConfig(o.dir));
  execFileSync(o.python, ['-m', 'synapse.app.homeserver', '--config-path', config, '--generate-missing-configs', '--keys-directory', o.dir], {
    cwd: o.dir,
    stdio: 'pipe',
  });

  const logTail = (lines = 40) => {
    const read = (f: string) => (existsSync(join(o.dir, f)) ? readFileSync(join(o.dir, f), 'utf8').split('\n').slice(-lines).join('\n') : '');
    return `${read('stdout')}\n${read('homeserver.log')}`;
  };
  const out: Buffer[] = [];
  const child: ChildProcess = spawn(o.python, ['-m', 'synapse.app.homeserver', '--config-path', config], { cwd: o.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => out.push(c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => {
    running = false;
    writeFileSync(join(o.dir, 'stdout'), Buffer.concat(out));
  });

  const stop = async () => {
    if (!running) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };

  const baseUrl = `http://127.0.0.1:${clientPort}`;
  const until = Date.now() + 90_000;
  for (;;) {
    if (!running) throw new Error(`Synapse exited before answering:\n${Buffer.concat(out).toString('utf8')}\n${logTail()}`);
    try {
      if ((await fetch(`${baseUrl}/_matrix/client/versions`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) {
      await stop();
      throw new Error(`Synapse did not answer /versions in 90 s:\n${logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { serverName, baseUrl, dir: o.dir, logTail, stop };
}
