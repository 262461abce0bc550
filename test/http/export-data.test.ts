import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const run = promisify(execFile);
const TSX = join(process.cwd(), 'node_modules', '.bin', 'tsx');

interface ClientEventJson {
  event_id: string;
  type: string;
  sender: string;
  state_key?: string;
  content: Record<string, unknown>;
}

async function send(server: TestServer, user: TestUser, roomId: string, body: string): Promise<string> {
  const res = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${Math.random()}`, {
    token: user.accessToken,
    body: { msgtype: 'm.text', body },
  });
  expect(res.status).toBe(200);
  return res.body.event_id;
}

async function ok(server: TestServer, method: string, path: string, user: TestUser, body?: unknown): Promise<any> {
  const res = await request(server.baseUrl, method, path, { token: user.accessToken, body });
  expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBe(200);
  return res.body;
}

function readJson(dir: string, ...path: string[]): any {
  return JSON.parse(readFileSync(join(dir, ...path), 'utf8'));
}

describe.each(testDialects())('skjol export-data (%s)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let roomA: string;
  let roomB: string;
  let roomC: string;
  let roomD: string;
  let mediaId: string;
  let aliceInA: string;
  let aliceInB: string;
  let configPath: string;
  const work = mkdtempSync(join(tmpdir(), 'skjol-export-test-'));
  const mediaBytes = Buffer.from('export-me: the bytes alice uploaded \u2603');

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');

    // Room A: history only for joined members; alice joins, talks, leaves, and bob talks on after.
    roomA = (await ok(server, 'POST', '/_matrix/client/v3/createRoom', bob, { preset: 'public_chat', name: 'Room A' })).room_id;
    await ok(server, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomA)}/state/m.room.history_visibility/`, bob, { history_visibility: 'joined' });
    await send(server, bob, roomA, 'MARK-before-alice-joined');
    await ok(server, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(roomA)}`, alice, {});
    aliceInA = await send(server, alice, roomA, 'MARK-alice-says-in-A');
    await send(server, bob, roomA, 'MARK-bob-while-alice-there');
    await ok(server, 'POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomA)}/leave`, alice, {});
    await send(server, bob, roomA, 'MARK-after-alice-left');

    // Room B: alice's own room, still joined, with a receipt and room account data.
    roomB = (await ok(server, 'POST', '/_matrix/client/v3/createRoom', alice, { preset: 'private_chat', name: 'Room B' })).room_id;
    aliceInB = await send(server, alice, roomB, 'MARK-alice-says-in-B');
    await ok(server, 'POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomB)}/receipt/m.read/${encodeURIComponent(aliceInB)}`, alice, {});
    await ok(server, 'PUT', `/_matrix/client/v3/user/${encodeURIComponent(alice.userId)}/rooms/${encodeURIComponent(roomB)}/account_data/org.example.room`, alice, { note: 'MARK-room-account-data' });
    await ok(server, 'PUT', `/_matrix/client/v3/user/${encodeURIComponent(alice.userId)}/account_data/org.example.global`, alice, { note: 'MARK-global-account-data' });

    // Room C: alice is only invited.
    roomC = (await ok(server, 'POST', '/_matrix/client/v3/createRoom', bob, { preset: 'private_chat', name: 'Room C' })).room_id;
    await send(server, bob, roomC, 'MARK-in-C-alice-never-joined');
    await ok(server, 'POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomC)}/invite`, bob, { user_id: alice.userId });

    // Room D: alice knocks and waits.
    roomD = (await ok(server, 'POST', '/_matrix/client/v3/createRoom', bob, { preset: 'private_chat', name: 'Room D', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] })).room_id;
    await send(server, bob, roomD, 'MARK-in-D-behind-the-door');
    await ok(server, 'POST', `/_matrix/client/v3/knock/${encodeURIComponent(roomD)}`, alice, { reason: 'let me in' });

    await ok(server, 'PUT', '/_matrix/client/v3/pushrules/global/content/exportrule', alice, { pattern: 'MARK-pushrule', actions: ['notify'] });
    await ok(server, 'POST', '/_matrix/client/v3/pushers/set', alice, {
      kind: 'http',
      app_id: 'org.example.app',
      pushkey: 'SECRET-pushkey-value',
      app_display_name: 'Example',
      device_display_name: 'Phone',
      lang: 'en',
      data: { url: 'http://127.0.0.1:9/_matrix/push/v1/notify', format: 'event_id_only', token: 'SECRET-pusher-data' },
    });
    const up = await request(server.baseUrl, 'POST', '/_matrix/media/v3/upload?filename=notes.txt', {
      token: alice.accessToken,
      rawBody: mediaBytes,
      headers: { 'content-type': 'text/plain' },
    });
    expect(up.status).toBe(200);
    mediaId = String(up.body.content_uri).split('/').pop()!;

    // The export runs beside the serving process, on the same database, as an operator would run it.
    const { config } = server.hs.services;
    configPath = join(work, 'homeserver.yaml');
    // YAML is a superset of JSON: the test server's own settings, as an operator's file would hold them.
    writeFileSync(
      configPath,
      JSON.stringify({
        server_name: config.server_name,
        database: config.database,
        signing_key_path: config.signing_key_path,
        media_store_path: config.media_store_path,
        log_level: 'warn',
      }),
    );
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const exportTo = (userId: string, out: string) =>
    run(TSX, ['src/main.ts', 'export-data', userId, '--config', configPath, '--output-directory', out], { timeout: 60_000 });

  it('writes profile, rooms with the events alice could see, media, account data, receipts and push rules', async () => {
    const out = join(work, 'alice-export');
    const { stdout } = await exportTo(alice.userId, out);
    expect(stdout).toContain(`Exported ${alice.userId}`);

    expect(readJson(out, 'export.json')).toMatchObject({ user_id: alice.userId, server_name: server.serverName, format_version: 1 });
    expect(readJson(out, 'user_data', 'profile.json')).toMatchObject({ user_id: alice.userId, displayname: 'alice', deactivated: false });

    // Rooms and memberships.
    const rooms = readJson(out, 'rooms.json') as Array<{ room_id: string; membership: string; directory: string }>;
    const byRoom = new Map(rooms.map((r) => [r.room_id, r]));
    expect(byRoom.get(roomA)?.membership).toBe('leave');
    expect(byRoom.get(roomB)?.membership).toBe('join');
    expect(byRoom.get(roomC)?.membership).toBe('invite');
    const events = (roomId: string): ClientEventJson[] => readJson(out, byRoom.get(roomId)!.directory, 'events.json');
    const bodies = (roomId: string) => events(roomId).map((e) => e.content.body).filter((b): b is string => typeof b === 'string');

    // Room A: what she saw while joined, nothing from before (history "joined") or after she left.
    expect(bodies(roomA)).toEqual(['MARK-alice-says-in-A', 'MARK-bob-while-alice-there']);
    expect(events(roomA).map((e) => e.event_id)).toContain(aliceInA);
    expect(events(roomA).filter((e) => e.type === 'm.room.member' && e.state_key === alice.userId).map((e) => e.content.membership)).toEqual(['join', 'leave']);
    const stateA = readJson(out, byRoom.get(roomA)!.directory, 'state.json') as ClientEventJson[];
    expect(stateA.find((e) => e.type === 'm.room.member' && e.state_key === alice.userId)?.content.membership).toBe('leave');
    expect(readJson(out, byRoom.get(roomA)!.directory, 'membership.json')).toMatchObject({ room_id: roomA, membership: 'leave' });

    // Room B: her own room from its creation.
    expect(bodies(roomB)).toEqual(['MARK-alice-says-in-B']);
    expect(events(roomB)[0]?.type).toBe('m.room.create');

    // Room C: the invite and what it showed of the room, none of its history.
    expect(bodies(roomC)).toEqual([]);
    expect(events(roomC).map((e) => [e.type, e.content.membership])).toEqual([['m.room.member', 'invite']]);
    const inviteState = readJson(out, byRoom.get(roomC)!.directory, 'invite_state.json') as Array<{ type: string; content: Record<string, unknown> }>;
    expect(inviteState.find((e) => e.type === 'm.room.name')?.content.name).toBe('Room C');

    // Room D: the knock and the room's stripped state only.
    expect(byRoom.get(roomD)?.membership).toBe('knock');
    expect(events(roomD).map((e) => [e.type, e.content.membership])).toEqual([['m.room.member', 'knock']]);
    const knockState = readJson(out, byRoom.get(roomD)!.directory, 'knock_state.json') as Array<{ type: string; content: Record<string, unknown> }>;
    expect(knockState.find((e) => e.type === 'm.room.join_rules')?.content.join_rule).toBe('knock');

    // Nothing alice was not allowed to see is anywhere in the export.
    const everything = readAll(out);
    for (const hidden of ['MARK-before-alice-joined', 'MARK-after-alice-left', 'MARK-in-C-alice-never-joined', 'MARK-in-D-behind-the-door']) expect(everything).not.toContain(hidden);

    // Account data, receipts, push rules.
    expect(readJson(out, 'user_data', 'account_data', 'global.json')['org.example.global']).toEqual({ note: 'MARK-global-account-data' });
    expect(readJson(out, 'user_data', 'account_data', 'rooms.json')[roomB]['org.example.room']).toEqual({ note: 'MARK-room-account-data' });
    expect(readJson(out, 'user_data', 'receipts.json')).toEqual([expect.objectContaining({ room_id: roomB, receipt_type: 'm.read', event_id: aliceInB })]);
    // The push rules are the set the server serves alice, defaults included.
    expect(readJson(out, 'user_data', 'push_rules.json')).toEqual(await ok(server, 'GET', '/_matrix/client/v3/pushrules/', alice));
    const content = readJson(out, 'user_data', 'push_rules.json').global.content as Array<{ rule_id: string; pattern: string }>;
    expect(content.find((r) => r.rule_id === 'exportrule')?.pattern).toBe('MARK-pushrule');

    // Devices and pushers without secrets.
    const devices = readJson(out, 'user_data', 'devices.json') as Array<{ device_id: string }>;
    expect(devices.map((d) => d.device_id)).toContain(alice.deviceId);
    const pushers = readJson(out, 'user_data', 'pushers.json') as Array<{ app_id: string; data: Record<string, unknown> }>;
    expect(pushers).toEqual([expect.objectContaining({ app_id: 'org.example.app', data: { url: 'http://127.0.0.1:9/_matrix/push/v1/notify', format: 'event_id_only' } })]);
    for (const secret of [alice.accessToken, 'SECRET-pushkey-value', 'SECRET-pusher-data', alice.password, '$argon2', '$scrypt']) expect(everything).not.toContain(secret);

    // Media: metadata and the bytes.
    const meta = readJson(out, 'media_ids', `${mediaId}.json`);
    expect(meta).toMatchObject({ media_id: mediaId, media_type: 'text/plain', upload_name: 'notes.txt', media_length: mediaBytes.length, file: `media/${mediaId}` });
    expect(readFileSync(join(out, 'media', mediaId))).toEqual(mediaBytes);

    // The export is private: owner-only files and directories.
    expect(statSync(out).mode & 0o077).toBe(0);
    expect(statSync(join(out, 'user_data', 'profile.json')).mode & 0o077).toBe(0);
  }, 90_000);

  it('refuses a non-empty output directory and an unknown user, with a message and a failing exit code', async () => {
    const busy = join(work, 'busy');
    mkdirSync(busy);
    writeFileSync(join(busy, 'keep.txt'), 'mine');
    const nonEmpty = await exportTo(alice.userId, busy).catch((e: { code: number; stderr: string }) => e);
    expect((nonEmpty as { code: number }).code).not.toBe(0);
    expect((nonEmpty as { stderr: string }).stderr).toMatch(/not empty/);
    expect(readdirSync(busy)).toEqual(['keep.txt']);

    const fresh = join(work, 'nobody');
    const unknown = await exportTo(`@nobody:${server.serverName}`, fresh).catch((e: { code: number; stderr: string }) => e);
    expect((unknown as { code: number }).code).not.toBe(0);
    expect((unknown as { stderr: string }).stderr).toMatch(/Unknown user @nobody/);
    expect(existsSync(fresh)).toBe(false);
  }, 90_000);
});

/** Every file of the export as one string, for "appears nowhere" checks. */
function readAll(dir: string): string {
  let text = '';
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    text += entry.isDirectory() ? readAll(path) : readFileSync(path, 'utf8');
  }
  return text;
}
