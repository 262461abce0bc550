import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { enc, startPair, type Fleet } from './helpers.js';
import { createTestCa, issueCert } from './tls.js';

interface Seen {
  method: string;
  path: string;
  body: any;
}

/**
 * A misbehaving remote server (no Skjól answers like this): make_join answers chosen per room, send_join
 * always refused. The homeserver under test is a real Skjól that reaches it over HTTPS on loopback.
 */
async function startFakeRemote(cert: { certificatePath: string; privateKeyPath: string }, answers: Map<string, { status: number; body: unknown }>) {
  const port = await freePort();
  const serverName = `127.0.0.1:${port}`;
  const seen: Seen[] = [];
  const server: Server = createServer({ cert: readFileSync(cert.certificatePath), key: readFileSync(cert.privateKeyPath) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0]!;
      const text = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', path, body: text ? JSON.parse(text) : undefined });
      const roomId = decodeURIComponent(path.split('/')[5] ?? '');
      const answer = path.startsWith('/_matrix/federation/v1/make_join/')
        ? answers.get(roomId)
        : path.startsWith('/_matrix/federation/v2/send_join/')
          ? { status: 403, body: { errcode: 'M_FORBIDDEN', error: 'The fake server refuses every join' } }
          : undefined;
      const { status, body } = answer ?? { status: 404, body: { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' } };
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { serverName, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

// Errors of another server reach the client as Synapse passes them on: a 4xx keeps its status and
// (well-formed) errcode; a make_join answer without room_version is a version 1 room.
describe.each(testDialects())('errors of remote servers on joins, on %s', (dialect) => {
  let dir: string;
  let server: TestServer;
  let fake: Awaited<ReturnType<typeof startFakeRemote>>;
  let alice: TestUser;
  const answers = new Map<string, { status: number; body: unknown }>();
  const room = (local: string) => `!${local}:${fake.serverName}`;
  const join = (roomId: string) => request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} });

  beforeAll(async () => {
    dir = mkdtempSync(joinPath(tmpdir(), 'skjol-fake-remote-'));
    const ca = createTestCa(dir);
    fake = await startFakeRemote(issueCert(dir, 'fake', ca), answers);
    server = await startHomeserver({ dialect, config: { federation_custom_ca_list: [ca.caPath] } });
    alice = await registerUser(server.baseUrl, 'alice');
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await fake?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a remote's 400 M_INCOMPATIBLE_ROOM_VERSION to make_join reaches the client as 400 M_INCOMPATIBLE_ROOM_VERSION", async () => {
    answers.set(room('future'), {
      status: 400,
      body: { errcode: 'M_INCOMPATIBLE_ROOM_VERSION', error: 'Your homeserver does not support the features required to join this room', room_version: 'org.example.future' },
    });
    const res = await join(room('future'));
    expect(res.status).toBe(400);
    expect(res.body.errcode).toBe('M_INCOMPATIBLE_ROOM_VERSION');
    expect(res.body.error).toBe('Your homeserver does not support the features required to join this room');
  });

  it('a malformed remote error is bounded: an odd errcode becomes M_UNKNOWN, the text is cut short and stripped of control characters', async () => {
    answers.set(room('hostile'), { status: 400, body: { errcode: 'M_<script>\nalert(1)', error: `first line\u0000\u001b[31m${'x'.repeat(10_000)}` } });
    const res = await join(room('hostile'));
    expect(res.status).toBe(400);
    expect(res.body.errcode).toBe('M_UNKNOWN');
    expect(res.body.error.startsWith('first line')).toBe(true);
    expect(res.body.error.length).toBeLessThanOrEqual(300);
    expect(res.body.error).not.toMatch(/[\u0000-\u001f]/);
  });

  it('a remote 5xx stays 502 for the client', async () => {
    answers.set(room('broken'), { status: 500, body: { errcode: 'M_UNKNOWN', error: 'Internal server error' } });
    const res = await join(room('broken'));
    expect(res.status).toBe(502);
  });

  it('a malformed make_join answer is 502, as Synapse answers (InvalidResponseError, then "via any server")', async () => {
    answers.set(room('garbled'), { status: 200, body: { room_version: '10', event: 'not an event' } });
    const res = await join(room('garbled'));
    expect(res.status).toBe(502);
    expect(res.body.errcode).toBe('M_UNKNOWN');
  });

  it('a make_join answer without room_version is a version 1 room: the join is built as a v1 event and sent', async () => {
    const roomId = room('old');
    const user = alice.userId;
    answers.set(roomId, {
      status: 200,
      body: {
        event: {
          room_id: roomId,
          sender: user,
          type: 'm.room.member',
          state_key: user,
          content: { membership: 'join' },
          prev_events: [[`$prev:${fake.serverName}`, { sha256: 'aGFzaA' }]],
          auth_events: [[`$create:${fake.serverName}`, { sha256: 'aGFzaA' }]],
          depth: 3,
          origin: fake.serverName,
          origin_server_ts: Date.now(),
        },
      },
    });
    const res = await join(roomId);
    // The fake refuses the send_join; the client sees its answer, not "unsupported room version".
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe('M_FORBIDDEN');
    expect(res.body.error).toBe('The fake server refuses every join');
    const sent = fake.seen.find((r) => r.method === 'PUT' && r.path.startsWith(`/_matrix/federation/v2/send_join/${enc(roomId)}/`));
    expect(sent).toBeDefined();
    // Version 1 events carry their own event_id, named in the path.
    expect(typeof sent!.body.event_id).toBe('string');
    expect(sent!.path.endsWith(`/${enc(sent!.body.event_id)}`)).toBe(true);
    expect(sent!.body.prev_events).toEqual([[`$prev:${fake.serverName}`, { sha256: 'aGFzaA' }]]);
  });
});

// The same between two real Skjól servers: B refuses a banned user's join, A's client reads B's reason.
describe.each(testDialects())('a remote refusal between two Skjól servers, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it("a user banned on B gets B's 403 M_FORBIDDEN with B's reason, and the invitee's server's refusal of an invite reaches the inviter", async () => {
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat' } });
    const roomId = created.body.room_id;
    const ban = await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/ban`, { token: bob.accessToken, body: { user_id: alice.userId, reason: 'spam' } });
    expect(ban.status).toBe(200);
    const res = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} });
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe('M_FORBIDDEN');
    expect(res.body.error).toMatch(/banned/);

    // Bob invites a user A does not have: A's 403 and its reason reach bob.
    const ghost = `@ghost:${A.serverName}`;
    const invite = await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { token: bob.accessToken, body: { user_id: ghost } });
    expect(invite.status).toBe(403);
    expect(invite.body.errcode).toBe('M_FORBIDDEN');
    expect(invite.body.error).toBe(`${ghost} is not a user of this server`);
  });
});
