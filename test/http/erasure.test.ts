import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/crypto/signing.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const enc = encodeURIComponent;
const V3 = '/_matrix/client/v3';

/** Every text column of every table (SQLite or PostgreSQL) that contains `needle`: "table.column". */
async function tablesContaining(db: Knex, dialect: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  if (dialect === 'sqlite') {
    const tables: Array<{ name: string }> = await db('sqlite_master').where({ type: 'table' }).select('name');
    for (const { name } of tables) {
      const cols: Array<{ name: string; type: string }> = await db.raw(`PRAGMA table_info("${name}")`);
      for (const c of cols) {
        const rows = await db.raw(`SELECT count(*) AS n FROM "${name}" WHERE CAST("${c.name}" AS TEXT) LIKE ?`, [`%${needle}%`]);
        if (Number(rows[0].n) > 0) hits.push(`${name}.${c.name}`);
      }
    }
  } else {
    const cols = await db.raw(
      `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying')`,
    );
    for (const c of cols.rows as Array<{ table_name: string; column_name: string }>) {
      const rows = await db.raw(`SELECT count(*) AS n FROM "${c.table_name}" WHERE "${c.column_name}" LIKE ?`, [`%${needle}%`]);
      if (Number(rows.rows[0].n) > 0) hits.push(`${c.table_name}.${c.column_name}`);
    }
  }
  return hits;
}

// Issue 13, part 1: erasure reaches every table and file.
describe.each(testDialects())('account erasure on %s', (dialect) => {
  let server: TestServer;
  let erin: TestUser;
  let mia: TestUser;
  let admin: TestUser;
  let roomId: string;
  const marker = `zqxmark${randomBytes(5).toString('hex')}`;
  const nameMarker = `Qzname${randomBytes(4).toString('hex')}`;
  const sent: string[] = [];

  const call = (user: TestUser | undefined, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, path.startsWith('/_') ? path : `${V3}${path}`, { ...(user ? { token: user.accessToken } : {}), ...(body !== undefined ? { body } : {}) });
  const send = async (user: TestUser, type: string, content: Record<string, unknown>): Promise<string> => {
    const res = await call(user, 'PUT', `/rooms/${enc(roomId)}/send/${enc(type)}/${randomBytes(6).toString('hex')}`, content);
    expect(res.status).toBe(200);
    return res.body.event_id;
  };
  const mustNotShow = (what: string, value: unknown) => {
    const text = JSON.stringify(value);
    expect(text.includes(marker), `${what} shows the erased message text`).toBe(false);
    expect(text.includes(nameMarker), `${what} shows the erased display name`).toBe(false);
    expect(text.includes('mxc://localhost/erinface'), `${what} shows the erased avatar`).toBe(false);
  };

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    erin = await registerUser(server.baseUrl, 'erin');
    mia = await registerUser(server.baseUrl, 'mia');
    admin = await registerUser(server.baseUrl, 'root');
    await server.hs.services.db.knex('users').where({ user_id: admin.userId }).update({ admin: true });
    roomId = (await call(mia, 'POST', '/createRoom', { preset: 'public_chat', name: 'Garden' })).body.room_id;
    expect((await call(erin, 'PUT', `/profile/${enc(erin.userId)}/displayname`, { displayname: `Erin ${nameMarker}` })).status).toBe(200);
    expect((await call(erin, 'PUT', `/profile/${enc(erin.userId)}/avatar_url`, { avatar_url: 'mxc://localhost/erinface' })).status).toBe(200);
    expect((await call(erin, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('erases a user with messages, keys, backup, account data, presence and receipts: nobody sees any of it', async () => {
    const miaMsg = await send(mia, 'm.room.message', { msgtype: 'm.text', body: 'hello erin' });
    // An invite carries the invitee's name and avatar: erasure prunes member events others sent about erin too.
    const invitedTo = (await call(mia, 'POST', '/createRoom', { preset: 'private_chat', invite: [erin.userId] })).body.room_id as string;
    const first = await send(erin, 'm.room.message', { msgtype: 'm.text', body: `my secret ${marker} one` });
    sent.push(first);
    sent.push(await send(erin, 'm.room.message', { msgtype: 'm.text', body: `* edited ${marker}`, 'm.new_content': { msgtype: 'm.text', body: `edited ${marker}` }, 'm.relates_to': { rel_type: 'm.replace', event_id: first } }));
    sent.push(await send(erin, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: miaMsg, key: marker } }));
    expect((await call(erin, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(miaMsg)}`, {})).status).toBe(200);
    expect((await call(erin, 'PUT', `/presence/${enc(erin.userId)}/status`, { presence: 'online', status_msg: `busy ${marker}` })).status).toBe(200);
    expect((await call(erin, 'PUT', `/user/${enc(erin.userId)}/account_data/org.example.notes`, { note: marker })).status).toBe(200);
    expect((await call(erin, 'POST', `/user/${enc(erin.userId)}/filter`, { room: { timeline: { types: [marker] } } })).status).toBe(200);
    const backup = await call(erin, 'POST', '/room_keys/version', { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: marker } });
    expect(backup.status).toBe(200);
    const key = { first_message_index: 0, forwarded_count: 0, is_verified: false, session_data: { ephemeral: 'e', ciphertext: marker, mac: 'm' } };
    expect((await call(erin, 'PUT', `/room_keys/keys/${enc(roomId)}/sess1?version=${backup.body.version}`, key)).status).toBe(200);
    const master = generateSigningKey();
    const masterKey = { user_id: erin.userId, usage: ['master'], keys: { [`ed25519:${master.publicKey}`]: master.publicKey } };
    expect((await call(erin, 'POST', '/keys/device_signing/upload', { master_key: masterKey })).status).toBe(200);
    const upload = await request(server.baseUrl, 'POST', '/_matrix/media/v3/upload?filename=face.png', {
      token: erin.accessToken,
      rawBody: Buffer.from(`picture ${marker}`),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(upload.status).toBe(200);
    const mediaPath = `/_matrix/client/v1/media/download/${(upload.body.content_uri as string).slice('mxc://'.length)}`;
    expect((await request(server.baseUrl, 'GET', mediaPath, { token: mia.accessToken, skipSpecCheck: true })).status).toBe(200);
    // Search and notifications hold the text before erasure.
    await expect
      .poll(async () => (await call(mia, 'POST', '/search', { search_categories: { room_events: { search_term: marker } } })).body.search_categories.room_events.count)
      .toBeGreaterThan(0);

    const challenge = await call(erin, 'POST', '/account/deactivate', { erase: true });
    expect(challenge.status).toBe(401);
    const done = await call(erin, 'POST', '/account/deactivate', {
      erase: true,
      auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: erin.userId }, password: erin.password, session: challenge.body.session },
    });
    expect(done.status).toBe(200);
    await server.hs.services.deactivation.idle();

    // The existing member: a fresh /sync, /messages, /state, /members, /context and /event.
    const sync = await call(mia, 'GET', '/sync');
    mustNotShow('/sync of an existing member', sync.body);
    const timeline = sync.body.rooms.join[roomId].timeline.events as Array<{ event_id: string; content: unknown }>;
    const erased = timeline.find((e) => e.event_id === first);
    if (erased) expect(erased.content).toEqual({});
    const messages = await call(mia, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    mustNotShow('/messages', messages.body);
    expect(messages.body.chunk.find((e: { event_id: string }) => e.event_id === first).content).toEqual({});
    // The server redacted the messages itself, so clients and other servers drop their copies too.
    expect(messages.body.chunk.some((e: { type: string; sender: string; redacts?: string; content: { redacts?: string } }) => e.type === 'm.room.redaction' && e.sender === erin.userId && (e.redacts ?? e.content.redacts) === first)).toBe(true);
    mustNotShow('/state', (await call(mia, 'GET', `/rooms/${enc(roomId)}/state`)).body);
    const members = await call(mia, 'GET', `/rooms/${enc(roomId)}/members`);
    mustNotShow('/members', members.body);
    expect(members.body.chunk.find((e: { state_key: string }) => e.state_key === erin.userId).content.membership).toBe('leave');
    mustNotShow('/members where erin was invited', (await call(mia, 'GET', `/rooms/${enc(invitedTo)}/members`)).body);
    mustNotShow('/event', (await call(mia, 'GET', `/rooms/${enc(roomId)}/event/${enc(first)}`)).body);
    mustNotShow('/context', (await call(mia, 'GET', `/rooms/${enc(roomId)}/context/${enc(first)}`)).body);
    mustNotShow('/relations', (await call(mia, 'GET', `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(miaMsg)}`)).body);
    const search = await call(mia, 'POST', '/search', { search_categories: { room_events: { search_term: marker } } });
    expect(search.body.search_categories.room_events.results).toEqual([]);

    // A later joiner.
    const leo = await registerUser(server.baseUrl, 'leo');
    expect((await call(leo, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    mustNotShow('/sync of a later joiner', (await call(leo, 'GET', '/sync')).body);
    mustNotShow('/messages of a later joiner', (await call(leo, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`)).body);

    // The hooks ran as a step of the job: the upload is gone.
    expect((await request(server.baseUrl, 'GET', mediaPath, { token: mia.accessToken, skipSpecCheck: true })).status).toBe(404);

    // Profile, presence, directory, keys.
    const profile = await call(mia, 'GET', `/profile/${enc(erin.userId)}`);
    mustNotShow('/profile', profile.body);
    const presence = await call(admin, 'GET', `/presence/${enc(erin.userId)}/status`);
    mustNotShow('/presence', presence.body);
    const directory = await call(mia, 'POST', '/user_directory/search', { search_term: 'erin' });
    expect(directory.body.results).toEqual([]);
    const keys = await call(mia, 'POST', '/keys/query', { device_keys: { [erin.userId]: [] } });
    expect(keys.body.master_keys?.[erin.userId]).toBeUndefined();
    expect(keys.body.device_keys[erin.userId] ?? {}).toEqual({});

    // Nothing of it in any table: messages, search index, account data, backup, presence, filters, profile.
    const db = server.hs.services.db.knex;
    expect(await tablesContaining(db, dialect, marker)).toEqual([]);
    expect(await tablesContaining(db, dialect, nameMarker)).toEqual([]);
    expect(await db('deactivation_jobs').select()).toEqual([]);
    expect(await db('receipts').where({ user_id: erin.userId }).select()).toEqual([]);
    expect(await db('cross_signing_keys').where({ user_id: erin.userId }).select()).toEqual([]);
    expect(await db('room_key_versions').where({ user_id: erin.userId }).select()).toEqual([]);
  });

  it('keeps the erased id taken forever and refuses to erase twice or an unknown user, without a 500', async () => {
    const again = await call(undefined, 'POST', '/register', { username: 'erin', password: 'another-pw', auth: { type: 'm.login.dummy' } });
    expect(again.status).toBe(400);
    expect(again.body.errcode).toBe('M_USER_IN_USE');
    const twice = await call(admin, 'POST', `/_synapse/admin/v1/deactivate/${enc(erin.userId)}`, { erase: true });
    expect(twice.status).toBe(400);
    expect(twice.body.errcode).toBe('M_INVALID_PARAM');
    const unknown = await call(admin, 'POST', `/_synapse/admin/v1/deactivate/${enc('@nobody:localhost')}`, { erase: true });
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_NOT_FOUND');
    const remote = await call(admin, 'POST', `/_synapse/admin/v1/deactivate/${enc('@someone:elsewhere.example')}`, { erase: true });
    expect(remote.status).toBe(400);
    const notAdmin = await call(mia, 'POST', `/_synapse/admin/v1/deactivate/${enc(admin.userId)}`, {});
    expect(notAdmin.status).toBe(403);
  });

  it('deactivation without erase leaves the rooms and clears the data but keeps the messages', async () => {
    const tom = await registerUser(server.baseUrl, 'tom');
    expect((await call(tom, 'PUT', `/profile/${enc(tom.userId)}/displayname`, { displayname: 'Tom Visible' })).status).toBe(200);
    expect((await call(tom, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    const invitedTo = (await call(mia, 'POST', '/createRoom', { preset: 'private_chat', invite: [tom.userId] })).body.room_id;
    const kept = await send(tom, 'm.room.message', { msgtype: 'm.text', body: 'tom was here' });
    expect((await call(tom, 'PUT', `/user/${enc(tom.userId)}/account_data/org.example.x`, { a: 1 })).status).toBe(200);
    const res = await call(admin, 'POST', `/_synapse/admin/v1/deactivate/${enc(tom.userId)}`, {});
    expect(res.status).toBe(200);
    const members = await call(mia, 'GET', `/rooms/${enc(roomId)}/members`);
    expect(members.body.chunk.find((e: { state_key: string }) => e.state_key === tom.userId).content.membership).toBe('leave');
    // The pending invite was rejected.
    const invited = await call(mia, 'GET', `/rooms/${enc(invitedTo)}/members`);
    expect(invited.body.chunk.find((e: { state_key: string }) => e.state_key === tom.userId).content.membership).toBe('leave');
    const event = await call(mia, 'GET', `/rooms/${enc(roomId)}/event/${enc(kept)}`);
    expect(event.body.content.body).toBe('tom was here');
    expect((await call(mia, 'GET', `/profile/${enc(tom.userId)}`)).body.displayname).toBeUndefined();
    expect(await server.hs.services.db.knex('account_data').where({ user_id: tom.userId }).select()).toEqual([]);
  });

  it('a deactivation interrupted by a crash resumes at start-up', async () => {
    const uma = await registerUser(server.baseUrl, 'uma');
    expect((await call(uma, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    const msg = await send(uma, 'm.room.message', { msgtype: 'm.text', body: `resume ${marker}` });
    // What the account transaction commits before the process dies: the flag and the job, no step run yet.
    const db = server.hs.services.db.knex;
    await db('users').where({ user_id: uma.userId }).update({ deactivated: true, erased: true });
    await db('deactivation_jobs').insert({ user_id: uma.userId, erase: true, step: 'leave', attempts: 0, created_ts: 1, updated_ts: 1 });
    server = await server.restart();
    await expect.poll(async () => (await server.hs.services.db.knex('deactivation_jobs').select()).length, { timeout: 20_000 }).toBe(0);
    const members = await call(mia, 'GET', `/rooms/${enc(roomId)}/members`);
    expect(members.body.chunk.find((e: { state_key: string }) => e.state_key === uma.userId).content.membership).toBe('leave');
    expect((await call(mia, 'GET', `/rooms/${enc(roomId)}/event/${enc(msg)}`)).body.content).toEqual({});
  });

  it('leaves none of the erased text in the database files or the media store after a clean stop', async () => {
    await server.stop();
    const walk = (dir: string): string[] =>
      existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(join(dir, d.name)) : [join(dir, d.name)])) : [];
    for (const file of walk(join(server.dir, 'media'))) {
      expect(readFileSync(file).includes(Buffer.from(marker)), `${file} holds the erased upload`).toBe(false);
    }
    if (dialect !== 'sqlite') return; // PostgreSQL: the rows are checked above (no table holds the text)
    const base = join(server.dir, 'homeserver.db');
    for (const file of [base, `${base}-wal`, `${base}-shm`]) {
      if (!existsSync(file)) continue;
      const bytes = readFileSync(file);
      expect(bytes.includes(Buffer.from(marker)), `${file} holds the erased text`).toBe(false);
      expect(bytes.includes(Buffer.from(nameMarker)), `${file} holds the erased display name`).toBe(false);
      expect(bytes.includes(Buffer.from(nameMarker.toLowerCase())), `${file} holds the erased display name (index)`).toBe(false);
    }
  });
});
