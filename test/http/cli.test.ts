import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { startHomeserver } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser } from '../helpers/users.js';

const run = promisify(execFile);
const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');

describe('command line and listeners', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skjol-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses to start with a wrong configuration key, naming it', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'server_name: example.org\nenable_registrtion: true\n');
    const err = await run(TSX, ['src/main.ts', 'serve', '--config', path]).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toMatch(/enable_registrtion/);
  });

  it('registers a user from the command line who can then log in', async () => {
    const server = await startHomeserver();
    const configPath = join(dir, 'hs.yaml');
    const dbPath = join(server.dir, 'homeserver.db');
    writeFileSync(
      configPath,
      `server_name: localhost\ndatabase:\n  name: sqlite3\n  args:\n    database: ${dbPath}\nsigning_key_path: ${join(server.dir, 'signing.key')}\nlog_level: warn\n`,
    );
    const { stdout } = await run(TSX, ['src/main.ts', 'register-user', '--config', configPath, '--user', 'carol', '--password', 'carol-secret-pw']);
    expect(stdout).toMatch(/@carol:localhost/);
    const res = await fetch(`${server.baseUrl}/_matrix/client/v3/login`, {
      method: 'POST',
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'carol' }, password: 'carol-secret-pw' }),
    });
    expect(res.status).toBe(200);
    await server.close();
  });

  it('deactivates and erases a user from the command line; a second erasure or an unknown user is a clear error', async () => {
    let server = await startHomeserver();
    const dan = await registerUser(server.baseUrl, 'dan');
    const eve = await registerUser(server.baseUrl, 'eve');
    const call = (token: string, method: string, path: string, body?: unknown) => request(server.baseUrl, method, path, { token, ...(body ? { body } : {}) });
    const roomId = (await call(eve.accessToken, 'POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat' })).body.room_id;
    await call(dan.accessToken, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
    const sent = await call(dan.accessToken, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'dan says hi' });
    await server.stop();
    const configPath = join(dir, 'deactivate.yaml');
    writeFileSync(
      configPath,
      `server_name: localhost\ndatabase:\n  name: sqlite3\n  args:\n    database: ${join(server.dir, 'homeserver.db')}\n` +
        `signing_key_path: ${join(server.dir, 'signing.key')}\nmedia_store_path: ${join(server.dir, 'media')}\nlog_level: warn\n`,
    );
    const { stdout } = await run(TSX, ['src/main.ts', 'deactivate-user', '@dan:localhost', '--erase', '--config', configPath]);
    expect(stdout).toMatch(/Erased @dan:localhost/);
    const twice = await run(TSX, ['src/main.ts', 'deactivate-user', '@dan:localhost', '--erase', '--config', configPath]).catch((e: { code: number; stderr: string }) => e);
    expect((twice as { code: number }).code).toBe(2);
    expect((twice as { stderr: string }).stderr).toMatch(/already erased/);
    const unknown = await run(TSX, ['src/main.ts', 'deactivate-user', '@nobody:localhost', '--config', configPath]).catch((e: { code: number; stderr: string }) => e);
    expect((unknown as { code: number }).code).toBe(2);
    expect((unknown as { stderr: string }).stderr).toMatch(/does not exist/);
    server = await server.restart();
    const event = await call(eve.accessToken, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(sent.body.event_id)}`);
    expect(event.body.content).toEqual({});
    const members = await call(eve.accessToken, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/members`);
    expect(members.body.chunk.find((e: { state_key: string }) => e.state_key === dan.userId).content).toEqual({ membership: 'leave' });
    await server.close();
  });

  it('refuses to serve a database that belongs to another server_name, naming both', async () => {
    const server = await startHomeserver();
    await server.stop();
    const configPath = join(dir, 'renamed.yaml');
    writeFileSync(
      configPath,
      `server_name: renamed.example\nlisteners: [{ port: 0 }]\ndatabase:\n  name: sqlite3\n  args:\n    database: ${join(server.dir, 'homeserver.db')}\n` +
        `signing_key_path: ${join(server.dir, 'signing.key')}\nmedia_store_path: ${join(server.dir, 'media')}\nlog_level: warn\n`,
    );
    // A server that wrongly starts is killed by the timeout and fails the exit-code check.
    const err = await run(TSX, ['src/main.ts', 'serve', '--config', configPath], { timeout: 30_000 }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toMatch(/"renamed\.example".*"localhost"/);
    await server.close();
  });

  it('serves over TLS when a listener has a certificate', async () => {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'ed25519', '-keyout', key, '-out', cert, '-days', '1', '-nodes', '-subj', '/CN=localhost']);
    const server = await startHomeserver();
    const port = await server.hs.listen(0, '127.0.0.1', { certificatePath: cert, privateKeyPath: key });
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/_matrix/client/versions', rejectUnauthorized: false }, (res) => {
        let data = '';
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve(data));
      });
      req.on('error', reject);
      req.end();
    });
    expect(JSON.parse(body).versions).toContain('v1.1');
    await server.close();
  });

  it('npm start serves a homeserver on the defaults', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'skjol-start-'));
    const child = spawn(TSX, [join(process.cwd(), 'src/main.ts'), 'serve'], { cwd, stdio: 'ignore' });
    try {
      let versions: unknown;
      for (let i = 0; i < 100 && versions === undefined; i++) {
        await new Promise((r) => setTimeout(r, 200));
        versions = await fetch('http://127.0.0.1:8008/_matrix/client/versions').then((r) => r.json()).catch(() => undefined);
      }
      expect(versions).toMatchObject({ versions: expect.arrayContaining(['v1.1']) });
    } finally {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
