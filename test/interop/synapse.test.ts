import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { registerUser } from '../helpers/users.js';
import { eventually, startFleet, type Fleet } from '../federation/helpers.js';
import { issueCert } from '../federation/tls.js';
import { startSynapse, synapsePython, type SynapseServer } from './synapseProcess.js';

// Federation with a real Synapse (issue 12): a Skjól user and a Synapse user, over HTTPS on loopback.
//   Skjól   localhost:<port>  — sigrid (the federation tests' server, trusting their test CA)
//   Synapse 127.0.0.1:<port>  — sam (certificate from the same CA; federation_custom_ca_list trusts it)
// Runs only where SKJOL_SYNAPSE_PYTHON names the python of a Synapse virtualenv; CI has none and skips.

const found = synapsePython();
const suite = 'python' in found ? describe : describe.skip;
const skipNote = 'skip' in found ? ` (skipped: ${found.skip})` : '';

interface Account {
  base: string;
  userId: string;
  token: string;
}

interface Answer {
  status: number;
  body: any;
}

const enc = encodeURIComponent;

/** Raw client API call; no spec checks, since half the answers come from Synapse. */
async function call(who: { base: string; token?: string }, method: string, path: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (who.token) headers.authorization = `Bearer ${who.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(who.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed };
}

/** Registers on Synapse through the dummy user-interactive flow. */
async function registerOnSynapse(base: string, username: string): Promise<Account> {
  const password = `pw-${username}-secret`;
  const first = await call({ base }, 'POST', '/_matrix/client/v3/register', { username, password });
  const res = await call({ base }, 'POST', '/_matrix/client/v3/register', { username, password, auth: { type: 'm.login.dummy', session: first.body?.session } });
  if (res.status !== 200) throw new Error(`Synapse register ${username}: ${res.status} ${JSON.stringify(res.body)}`);
  return { base, userId: res.body.user_id, token: res.body.access_token };
}

async function send(who: Account, roomId: string, body: string): Promise<void> {
  const res = await call(who, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${randomBytes(8).toString('hex')}`, { msgtype: 'm.text', body });
  if (res.status !== 200) throw new Error(`send on ${who.base}: ${res.status} ${JSON.stringify(res.body)}`);
}

async function bodies(who: Account, roomId: string): Promise<string[]> {
  const res = await call(who, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=100`);
  if (res.status !== 200) return [];
  return (res.body.chunk as any[]).filter((e) => e.type === 'm.room.message').map((e) => e.content.body as string);
}

async function membership(who: Account, roomId: string, userId: string): Promise<string | undefined> {
  const res = await call(who, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);
  return res.status === 200 ? res.body.membership : undefined;
}

async function joinedRooms(who: Account): Promise<string[]> {
  return (await call(who, 'GET', '/_matrix/client/v3/joined_rooms')).body.joined_rooms;
}

/** Each side posts a line; each sees the other's. */
async function talk(sigrid: Account, sam: Account, roomId: string, tag: string): Promise<void> {
  await send(sigrid, roomId, `${tag}: from Skjól`);
  await eventually(async () => (await bodies(sam, roomId)).includes(`${tag}: from Skjól`), `Skjól's message on Synapse (${tag})`);
  await send(sam, roomId, `${tag}: from Synapse`);
  await eventually(async () => (await bodies(sigrid, roomId)).includes(`${tag}: from Synapse`), `Synapse's message on Skjól (${tag})`);
}

async function upload(who: Account, bytes: Buffer, contentType: string): Promise<{ server: string; id: string }> {
  const res = await fetch(`${who.base}/_matrix/media/v3/upload?filename=interop.bin`, {
    method: 'POST',
    headers: { authorization: `Bearer ${who.token}`, 'content-type': contentType },
    body: bytes,
  });
  const body = (await res.json()) as { content_uri: string };
  expect(res.status).toBe(200);
  const m = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(body.content_uri);
  if (!m) throw new Error(`odd content_uri ${body.content_uri}`);
  return { server: m[1]!, id: m[2]! };
}

async function download(who: Account, server: string, id: string): Promise<{ status: number; type: string | null; bytes: Buffer }> {
  const res = await fetch(`${who.base}/_matrix/client/v1/media/download/${server}/${id}`, { headers: { authorization: `Bearer ${who.token}` } });
  return { status: res.status, type: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()) };
}

suite(`Skjól ⇄ Synapse 1.120.2 over HTTPS${skipNote}`, () => {
  describe.each(testDialects())('Skjól on %s', (dialect) => {
    let fleet: Fleet;
    let skjol: TestServer;
    let synapse: SynapseServer;
    let sigrid: Account, sam: Account;

    beforeAll(async () => {
      fleet = await startFleet(dialect, ['localhost']);
      [skjol] = fleet.servers as [TestServer];
      synapse = await startSynapse({
        python: (found as { python: string }).python,
        dir: join(fleet.dir, 'synapse'),
        cert: issueCert(fleet.dir, 'synapse', fleet.ca),
        caPath: fleet.ca.caPath,
      });
      const s = await registerUser(skjol.baseUrl, 'sigrid');
      sigrid = { base: skjol.baseUrl, userId: s.userId, token: s.accessToken };
      sam = await registerOnSynapse(synapse.baseUrl, 'sam');
    }, 120_000);

    afterAll(async () => {
      await synapse?.stop();
      await fleet?.close();
    });

    it('(a) a direct chat created on Skjól with the Synapse user invited: the invite reaches his /sync, he joins, they talk', async () => {
      const created = await call(sigrid, 'POST', '/_matrix/client/v3/createRoom', { preset: 'trusted_private_chat', is_direct: true, invite: [sam.userId] });
      expect(created.status).toBe(200);
      const roomId = created.body.room_id as string;

      const invite = await eventually(async () => (await call(sam, 'GET', '/_matrix/client/v3/sync?timeout=0')).body.rooms?.invite?.[roomId], 'the invite in Synapse /sync');
      const member = (invite.invite_state.events as any[]).find((e) => e.type === 'm.room.member' && e.state_key === sam.userId);
      expect(member?.content).toMatchObject({ membership: 'invite', is_direct: true });
      expect(member?.sender).toBe(sigrid.userId);

      expect((await call(sam, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, {})).status).toBe(200);
      await eventually(async () => (await membership(sigrid, roomId, sam.userId)) === 'join', 'the Synapse user joined, as Skjól sees it');
      await talk(sigrid, sam, roomId, 'direct chat');
    });

    it('(b) a public room with an alias on Synapse: Skjól resolves the remote alias, joins by it, and they talk', async () => {
      const aliasName = `lobby${randomBytes(4).toString('hex')}`;
      const created = await call(sam, 'POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat', room_alias_name: aliasName });
      expect(created.status).toBe(200);
      const roomId = created.body.room_id as string;
      const alias = `#${aliasName}:${synapse.serverName}`;

      const resolved = await call(sigrid, 'GET', `/_matrix/client/v3/directory/room/${enc(alias)}`);
      expect(resolved.status).toBe(200);
      expect(resolved.body.room_id).toBe(roomId);
      expect(resolved.body.servers).toContain(synapse.serverName);

      const joined = await call(sigrid, 'POST', `/_matrix/client/v3/join/${enc(alias)}`, {});
      expect(joined.status).toBe(200);
      expect(joined.body.room_id).toBe(roomId);
      await eventually(async () => (await membership(sam, roomId, sigrid.userId)) === 'join', 'the Skjól user joined, as Synapse sees it');
      await talk(sigrid, sam, roomId, 'public room');

      const missing = await call(sigrid, 'GET', `/_matrix/client/v3/directory/room/${enc(`#nosuch${aliasName}:${synapse.serverName}`)}`);
      expect(missing.status).toBe(404);
      expect(missing.body.errcode).toBe('M_NOT_FOUND');
    });

    it('(c) Skjól left the room entirely, Synapse made it invite-only: the rejoin is refused by Synapse (403), not joined locally', async () => {
      const roomId = (await call(sam, 'POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat' })).body.room_id as string;
      expect((await call(sigrid, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, {})).status).toBe(200);
      await eventually(async () => (await membership(sam, roomId, sigrid.userId)) === 'join', 'joined on Synapse');
      expect((await call(sigrid, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
      await eventually(async () => (await membership(sam, roomId, sigrid.userId)) === 'leave', 'left on Synapse');

      expect((await call(sam, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.join_rules/`, { join_rule: 'invite' })).status).toBe(200);
      for (const path of [`/_matrix/client/v3/join/${enc(roomId)}`, `/_matrix/client/v3/rooms/${enc(roomId)}/join`]) {
        const rejoin = await call(sigrid, 'POST', path, {});
        expect(rejoin.status).toBe(403);
        expect(rejoin.body.errcode).toBe('M_FORBIDDEN');
      }
      expect(await joinedRooms(sigrid)).not.toContain(roomId);
      expect(await membership(sam, roomId, sigrid.userId)).toBe('leave');

      // Invited again, the same user gets back in through Synapse.
      expect((await call(sam, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: sigrid.userId })).status).toBe(200);
      await eventually(async () => (await call(sigrid, 'GET', '/_matrix/client/v3/sync?timeout=0')).body.rooms?.invite?.[roomId], 'the invite on Skjól');
      expect((await call(sigrid, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, {})).status).toBe(200);
      await eventually(async () => (await membership(sam, roomId, sigrid.userId)) === 'join', 'rejoined on Synapse');
      await talk(sigrid, sam, roomId, 'after the rejoin');
    });

    it("(d) remote media: each side downloads the other's upload through its own server, byte for byte", async () => {
      const fromSynapse = randomBytes(200_000);
      const up1 = await upload(sam, fromSynapse, 'application/octet-stream');
      expect(up1.server).toBe(synapse.serverName);
      const got1 = await download(sigrid, up1.server, up1.id);
      expect(got1.status).toBe(200);
      expect(got1.bytes.equals(fromSynapse)).toBe(true);

      const fromSkjol = Buffer.from(`plain text from Skjól ${randomBytes(16).toString('hex')}\n`.repeat(500));
      const up2 = await upload(sigrid, fromSkjol, 'text/plain');
      expect(up2.server).toBe(skjol.serverName);
      const got2 = await download(sam, up2.server, up2.id);
      expect(got2.status).toBe(200);
      expect(got2.type).toMatch(/^text\/plain/);
      expect(got2.bytes.equals(fromSkjol)).toBe(true);

      // Media Synapse does not have: its 404 M_NOT_FOUND, not a 502.
      const none = await call(sigrid, 'GET', `/_matrix/client/v1/media/download/${synapse.serverName}/nosuchmedia${randomBytes(4).toString('hex')}`);
      expect(none.status).toBe(404);
      expect(none.body.errcode).toBe('M_NOT_FOUND');
    });

    it("(e) joining a room Synapse does not have: Synapse's 4xx and errcode reach the client, not 502 M_UNKNOWN", async () => {
      const roomId = `!nosuchroom${randomBytes(4).toString('hex')}:${synapse.serverName}`;
      const res = await call(sigrid, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, {});
      expect(res.status, JSON.stringify(res.body)).toBe(404);
      expect(res.body.errcode).toBe('M_NOT_FOUND');
      expect(await joinedRooms(sigrid)).not.toContain(roomId);
    });
  });
});
