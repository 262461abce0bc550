import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../../helpers/homeserver.js';
import { request } from '../../helpers/http.js';
import type { TestUser } from '../../helpers/users.js';
import { admin, enc, makeAdmin, registerUser } from './helpers.js';

const run = promisify(execFile);

/** Debian's synadm (installed by .ci/run); the test says why it skips when it is missing. */
async function synadmInstalled(): Promise<boolean> {
  try {
    await run('synadm', ['--help'], { timeout: 30_000 });
    return true;
  } catch {
    console.warn('synadm test skipped: the synadm command is not installed (apt-get install synadm)');
    return false;
  }
}

const installed = await synadmInstalled();

// The admin CLI people use with Synapse, against a real Skjól. synadm exits 0 even when the server answers
// 404, so every step asserts what changed on the server, not the exit code.
describe.skipIf(!installed).each(testDialects())('synadm against Skjól on %s', (dialect) => {
  let server: TestServer;
  let root: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let home: string;

  /** Runs `synadm --batch -o json …` with its config in a temporary HOME; returns stdout. */
  async function synadm(...args: string[]): Promise<string> {
    const res = await run('synadm', ['--batch', '-o', 'json', '-c', join(home, 'synadm.yaml'), ...args], {
      env: { ...process.env, HOME: home },
      timeout: 60_000,
    });
    return res.stdout;
  }

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    root = await makeAdmin(server);
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    home = mkdtempSync(join(tmpdir(), 'skjol-synadm-'));
    mkdirSync(join(home, '.config'), { recursive: true });
    // synadm's own config keys (synadm config --help); the server name is given so nothing is discovered.
    writeFileSync(
      join(home, 'synadm.yaml'),
      [
        'user: root',
        `token: ${root.accessToken}`,
        `base_url: ${server.baseUrl}`,
        'admin_path: /_synapse/admin',
        'matrix_path: /_matrix',
        'timeout: 30',
        'server_discovery: well-known',
        'homeserver: localhost',
        'format: json',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
  });
  afterAll(async () => {
    await server?.close();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('version', async () => {
    expect(JSON.parse(await synadm('version'))).toEqual({ server_version: expect.any(String) });
  });

  it('user list and details', async () => {
    const list = JSON.parse(await synadm('user', 'list'));
    expect(list.users.map((u: { name: string }) => u.name)).toEqual([alice.userId, bob.userId, root.userId]);
    expect(list.total).toBe(3);
    const details = await synadm('user', 'details', 'alice');
    expect(details).toContain('"name": "@alice:localhost"');
    expect(details).toContain('"deactivated": false');
  });

  it('user modify changes the display name and admin flag; it creates users too', async () => {
    await synadm('user', 'modify', 'alice', '--display-name', 'Alice Cooper', '--admin');
    const res = await admin(server, 'GET', `/v2/users/${enc(alice.userId)}`, root.accessToken);
    expect(res.body).toMatchObject({ displayname: 'Alice Cooper', admin: true });
    await synadm('user', 'modify', 'carol', '--password', 'carol-secret-pw', '--display-name', 'Carol');
    const login = await request(server.baseUrl, 'POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'carol' }, password: 'carol-secret-pw' },
    });
    expect(login.status).toBe(200);
  });

  it('room list, details and delete', async () => {
    const created = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', {
      token: bob.accessToken,
      body: { preset: 'public_chat', name: 'Spam palace', room_alias_name: 'spam' },
    });
    const roomId = created.body.room_id as string;
    const list = JSON.parse(await synadm('room', 'list'));
    expect(list.rooms.map((r: { room_id: string }) => r.room_id)).toContain(roomId);
    const details = JSON.parse(await synadm('room', 'details', roomId));
    expect(details).toMatchObject({ room_id: roomId, name: 'Spam palace', canonical_alias: '#spam:localhost', joined_members: 1 });
    await synadm('room', 'delete', roomId, '--block');
    const joined = await request(server.baseUrl, 'GET', '/_matrix/client/v3/joined_rooms', { token: bob.accessToken });
    expect(joined.body.joined_rooms).not.toContain(roomId);
    expect((await admin(server, 'GET', `/v1/rooms/${enc(roomId)}`, root.accessToken)).status).toBe(404);
    expect(JSON.parse(await synadm('room', 'list')).total_rooms).toBe(0);
  });

  it('media list and delete', async () => {
    const upload = await request(server.baseUrl, 'POST', '/_matrix/media/v3/upload?filename=a.txt', {
      token: alice.accessToken,
      rawBody: 'hello media',
      headers: { 'content-type': 'text/plain' },
    });
    const mediaId = (upload.body.content_uri as string).split('/').pop()!;
    const list = JSON.parse(await synadm('media', 'list', '--user-id', 'alice'));
    expect(list.media.map((m: { media_id: string }) => m.media_id)).toEqual([mediaId]);
    await synadm('media', 'delete', '--media-id', mediaId);
    const download = await request(server.baseUrl, 'GET', `/_matrix/client/v1/media/download/localhost/${mediaId}`, { token: alice.accessToken });
    expect(download.status).toBe(404);
    expect(JSON.parse(await synadm('media', 'list', '--user-id', 'alice')).total).toBe(0);
  });

  it('user deactivate', async () => {
    await synadm('user', 'deactivate', 'bob');
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: bob.accessToken })).status).toBe(401);
    expect((await admin(server, 'GET', `/v2/users/${enc(bob.userId)}`, root.accessToken)).body.deactivated).toBe(true);
  });
});
