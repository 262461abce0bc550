/**
 * Memory under large uploads (issue 11, finding 4): `npx tsx test/bench/uploadMemory.ts [--root DIR]
 * [--count 10] [--mb 45] [--auth]`. Starts `src/main.ts serve` of the tree at --root (default: this one)
 * as a child process, sends `count` concurrent uploads of `mb` MB without a token (with --auth: with a
 * valid one, stored in full), and prints the server's RSS before and after, its peak RSS, and how much
 * each client had sent when it got its answer.
 * A measurement, not a test: nothing here fails on a number.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify as toYaml } from 'yaml';
import { freePort } from '../helpers/homeserver.js';
import { REPO_ROOT } from './server.js';

const { values } = parseArgs({ options: { root: { type: 'string' }, count: { type: 'string' }, mb: { type: 'string' }, auth: { type: 'boolean' } } });
const root = resolve(values.root ?? REPO_ROOT);
const count = Number(values.count ?? 10);
const bytes = Number(values.mb ?? 45) * 1024 * 1024;

function memoryKb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** One upload without a token; resolves with the status (if any) and the bytes written before it came. */
function upload(port: number, token: string | undefined): Promise<{ status: string; sentMb: number }> {
  return new Promise((done) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const chunk = Buffer.alloc(64 * 1024);
    let sent = 0;
    let answer = '';
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      socket.destroy();
      done({ status: /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 'closed', sentMb: Math.round(sent / 1024 / 1024) });
    };
    socket.on('data', (d: Buffer) => {
      answer += d.toString('latin1');
      if (answer.includes('\r\n\r\n')) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    const write = () => {
      while (!finished && sent < bytes) {
        const ok = socket.write(chunk);
        sent += chunk.length;
        if (!ok) return void socket.once('drain', write);
      }
    };
    socket.once('connect', () => {
      socket.write(`POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bytes}\r\n${token ? `Authorization: Bearer ${token}\r\n` : ''}\r\n`);
      write();
    });
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'skjol-bench-upload-'));
  const port = await freePort();
  const configPath = join(dir, 'homeserver.yaml');
  writeFileSync(
    configPath,
    toYaml({
      server_name: 'localhost',
      listeners: [{ port, bind_addresses: ['127.0.0.1'] }],
      database: { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } },
      signing_key_path: join(dir, 'signing.key'),
      media_store_path: join(dir, 'media'),
      max_upload_size: '50M',
      log_level: 'warn',
    }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/main.ts'), 'serve', '--config', configPath], { cwd: root, stdio: 'ignore' });
  try {
    for (;;) {
      const up = await fetch(`http://127.0.0.1:${port}/_matrix/client/versions`).then((r) => r.ok, () => false);
      if (up) break;
      if (child.exitCode !== null) throw new Error('server exited during start-up');
      await sleep(200);
    }
    let token: string | undefined;
    if (values.auth) {
      const register = (auth?: object) =>
        fetch(`http://127.0.0.1:${port}/_matrix/client/v3/register`, {
          method: 'POST',
          body: JSON.stringify({ username: 'bench', password: 'bench-password-1', auth }),
        }).then((r) => r.json() as Promise<{ session?: string; access_token?: string }>);
      const { session } = await register();
      token = (await register({ type: 'm.login.dummy', session })).access_token;
    }
    await sleep(1000);
    const before = memoryKb(child.pid!);
    const outcomes = await Promise.all(Array.from({ length: count }, () => upload(port, token)));
    const after = memoryKb(child.pid!);
    const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;
    console.log(`tree: ${root}`);
    console.log(`${count} ${token ? 'authenticated' : 'unauthenticated'} uploads of ${bytes / 1024 / 1024} MB`);
    console.log(`answers: ${outcomes.map((o) => `${o.status} after ${o.sentMb} MB`).join(', ')}`);
    console.log(`server RSS before ${mb(before.rss)}, after ${mb(after.rss)} (+${mb(after.rss - before.rss)}); peak ${mb(after.hwm)} (+${mb(after.hwm - before.rss)} over before)`);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
