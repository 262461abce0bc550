import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa, issueCert } from '../federation/tls.js';
import { freePort, startHomeserver, type TestServer } from '../helpers/homeserver.js';

// contrib/nginx/skjol.conf and contrib/Caddyfile as an admin would use them, with only the ports,
// certificates and upstream changed, in front of a real Skjól. Skipped where nginx / caddy are not installed
// (.ci/run installs both).

const run = promisify(execFile);
const root = process.cwd();
const nginxBin = await run('nginx', ['-v']).then(() => 'nginx', () => run('/usr/sbin/nginx', ['-v']).then(() => '/usr/sbin/nginx', () => undefined));
const caddyBin = await run('caddy', ['version']).then(() => 'caddy', () => undefined);

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** HTTPS to 127.0.0.1:port as if to `host` (SNI and Host); the proxies' test certificates are not checked. */
function get(port: number, host: string, path: string, method = 'GET', body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path, method, servername: host, headers: { host, ...(body ? { 'content-length': body.length } : {}) }, rejectUnauthorized: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`proxy exited: ${log()}`);
    const up = await get(port, 'matrix.example.org', '/').then(() => true, () => false);
    if (up) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`proxy did not listen: ${log()}`);
}

/** What the README promises of either proxy: clients and federation reach Skjól, delegation answers. */
async function checkProxy(server: TestServer, https: number, federation: number | undefined): Promise<void> {
  const versions = await get(https, 'matrix.example.org', '/_matrix/client/versions');
  expect(versions.status).toBe(200);
  expect(JSON.parse(versions.body).versions).toContain('v1.1');
  const keys = await get(federation ?? https, 'matrix.example.org', '/_matrix/key/v2/server');
  expect(keys.status).toBe(200);
  expect(JSON.parse(keys.body).server_name).toBe(server.serverName);
  const delegation = await get(https, 'example.org', '/.well-known/matrix/server');
  expect(delegation.status).toBe(200);
  expect(JSON.parse(delegation.body)).toEqual({ 'm.server': 'matrix.example.org:443' });
  const client = await get(https, 'example.org', '/.well-known/matrix/client');
  expect(JSON.parse(client.body)).toEqual({ 'm.homeserver': { base_url: 'https://matrix.example.org' } });
  expect(client.headers['access-control-allow-origin']).toBe('*');
  // An upload of several megabytes passes the proxy's body limit (it is not Skjól's 401 that stops it here).
  const upload = await get(https, 'matrix.example.org', '/_matrix/media/v3/upload', 'POST', Buffer.alloc(5 * 1024 * 1024));
  expect(upload.status).toBe(401);
}

describe('reverse proxies in front of Skjól', () => {
  let server: TestServer;
  let dir: string;
  let cert: { certificatePath: string; privateKeyPath: string };
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-proxy-'));
    chmodSync(dir, 0o755); // nginx workers run as nobody and write their temp files here
    cert = issueCert(dir, 'proxy', createTestCa(dir));
    chmodSync(cert.privateKeyPath, 0o644);
    server = await startHomeserver();
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!nginxBin)('nginx: contrib/nginx/skjol.conf passes nginx -t and proxies clients, federation on 8448 and delegation', async () => {
    const [https, federation] = [await freePort(), await freePort()];
    const upstream = new URL(server.baseUrl).port;
    const site = readFileSync(join(root, 'contrib', 'nginx', 'skjol.conf'), 'utf8')
      .replace(/^\s*listen \[::\].*\n/gm, '')
      .replace(/listen 443 /g, `listen 127.0.0.1:${https} `)
      .replace(/listen 8448 /g, `listen 127.0.0.1:${federation} `)
      .replace(/\/etc\/letsencrypt\/live\/[^/]+\/fullchain\.pem/g, cert.certificatePath)
      .replace(/\/etc\/letsencrypt\/live\/[^/]+\/privkey\.pem/g, cert.privateKeyPath)
      .replace(/127\.0\.0\.1:8008/g, `127.0.0.1:${upstream}`);
    const prefix = join(dir, 'nginx');
    mkdirSync(join(prefix, 'tmp'), { recursive: true, mode: 0o777 });
    chmodSync(join(prefix, 'tmp'), 0o777);
    writeFileSync(join(prefix, 'skjol.conf'), site);
    writeFileSync(
      join(prefix, 'nginx.conf'),
      `daemon off;\npid ${prefix}/nginx.pid;\nerror_log ${prefix}/error.log;\nevents {}\nhttp {\n  access_log off;\n` +
        ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${prefix}/tmp/${t};\n`).join('') +
        `  include ${prefix}/skjol.conf;\n}\n`,
    );
    const test = await run(nginxBin!, ['-t', '-p', prefix, '-c', join(prefix, 'nginx.conf')]);
    expect(test.stderr).toMatch(/syntax is ok/);
    const nginx = spawn(nginxBin!, ['-p', prefix, '-c', join(prefix, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(nginx);
    let log = '';
    nginx.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    await waitForPort(https, nginx, () => log);
    await checkProxy(server, https, federation);
    // The admin API is not exposed through the proxy.
    expect((await get(https, 'matrix.example.org', '/_synapse/admin/v1/server_version')).status).toBe(404);
    nginx.kill('SIGTERM');
  }, 120_000);

  it.skipIf(!caddyBin)('Caddy: contrib/Caddyfile validates and proxies clients and delegation', async () => {
    const caddyfile = readFileSync(join(root, 'contrib', 'Caddyfile'), 'utf8');
    await run(caddyBin!, ['validate', '--adapter', 'caddyfile', '--config', join(root, 'contrib', 'Caddyfile')], { env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } });
    const https = await freePort();
    const upstream = new URL(server.baseUrl).port;
    // Caddy's own local CA instead of ACME; the site blocks themselves are the file's.
    const local =
      `{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\tauto_https disable_redirects\n\tstorage file_system ${join(dir, 'caddy')}\n}\n\n` +
      caddyfile
        .replace(/^matrix\.example\.org \{/m, `matrix.example.org:${https} {`)
        .replace(/^example\.org \{/m, `example.org:${https} {`)
        .replace(/127\.0\.0\.1:8008/g, `127.0.0.1:${upstream}`);
    const path = join(dir, 'Caddyfile');
    writeFileSync(path, local);
    const caddy = spawn(caddyBin!, ['run', '--adapter', 'caddyfile', '--config', path], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } });
    children.push(caddy);
    let log = '';
    caddy.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    await waitForPort(https, caddy, () => log);
    await checkProxy(server, https, undefined);
    caddy.kill('SIGTERM');
  }, 120_000);
});
