import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

// Spec: Client-Server API, "Server-side key backups".

const ALG = 'm.megolm_backup.v1.curve25519-aes-sha2';
const V3 = '/_matrix/client/v3';

interface Key {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: Record<string, unknown>;
}

const key = (fmi: number, fc: number, verified: boolean, tag: string): Key => ({
  first_message_index: fmi,
  forwarded_count: fc,
  is_verified: verified,
  session_data: { ephemeral: `eph-${tag}`, ciphertext: `ct-${tag}`, mac: `mac-${tag}` },
});

const enc = encodeURIComponent;

describe.each(testDialects())('key backup on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let n = 0;

  const call = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, V3 + path, { token: user.accessToken, body });

  /** A fresh user with a fresh backup, so tests do not see each other's versions. */
  async function userWithBackup(): Promise<{ user: TestUser; version: string }> {
    const user = await registerUser(server.baseUrl, `kb${n++}`);
    const res = await call(user, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: { public_key: 'pk' } });
    expect(res.status).toBe(200);
    return { user, version: res.body.version };
  }

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('creates, reads, updates and deletes backup versions', async () => {
    const none = await call(alice, 'GET', '/room_keys/version');
    expect(none.status).toBe(404);
    expect(none.body.errcode).toBe('M_NOT_FOUND');

    const authData = { public_key: 'abcdefg', signatures: { [alice.userId]: { 'ed25519:DEV': 'sig' } } };
    const v1 = await call(alice, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: authData });
    expect(v1.status).toBe(200);
    expect(v1.body).toEqual({ version: '1' });

    const latest = await call(alice, 'GET', '/room_keys/version');
    expect(latest.status).toBe(200);
    expect(latest.body).toEqual({ algorithm: ALG, auth_data: authData, count: 0, etag: expect.any(String), version: '1' });

    const v2 = await call(alice, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: { public_key: 'second' } });
    expect(v2.body).toEqual({ version: '2' });
    expect((await call(alice, 'GET', '/room_keys/version')).body.version).toBe('2');
    // An older version is still readable by number; the r0 prefix serves the same thing.
    const old = await request(server.baseUrl, 'GET', '/_matrix/client/r0/room_keys/version/1', { token: alice.accessToken });
    expect(old.status).toBe(200);
    expect(old.body.auth_data).toEqual(authData);

    // Update: only auth_data changes.
    const upd = await call(alice, 'PUT', '/room_keys/version/2', { algorithm: ALG, auth_data: { public_key: 'second', extra: 1 }, version: '2' });
    expect(upd.status).toBe(200);
    expect(upd.body).toEqual({});
    expect((await call(alice, 'GET', '/room_keys/version/2')).body.auth_data).toEqual({ public_key: 'second', extra: 1 });
    // …without the optional body version too.
    expect((await call(alice, 'PUT', '/room_keys/version/2', { algorithm: ALG, auth_data: { public_key: 'third' } })).status).toBe(200);

    const wrongAlg = await call(alice, 'PUT', '/room_keys/version/2', { algorithm: 'm.other', auth_data: {} });
    expect(wrongAlg.status).toBe(400);
    expect(wrongAlg.body.errcode).toBe('M_INVALID_PARAM');
    const wrongVersion = await call(alice, 'PUT', '/room_keys/version/2', { algorithm: ALG, auth_data: {}, version: '1' });
    expect(wrongVersion.status).toBe(400);
    expect(wrongVersion.body.errcode).toBe('M_INVALID_PARAM');
    const unknown = await call(alice, 'PUT', '/room_keys/version/9', { algorithm: ALG, auth_data: {} });
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_NOT_FOUND');
    for (const bad of ['0', 'abc', '99999999999', '-1']) {
      expect((await call(alice, 'GET', `/room_keys/version/${bad}`)).status).toBe(404);
    }

    // Delete: the latest falls back to the previous live version; deleting again is fine; never-existed is 404.
    expect((await call(alice, 'DELETE', '/room_keys/version/2')).status).toBe(200);
    expect((await call(alice, 'DELETE', '/room_keys/version/2')).status).toBe(200);
    expect((await call(alice, 'GET', '/room_keys/version/2')).status).toBe(404);
    expect((await call(alice, 'PUT', '/room_keys/version/2', { algorithm: ALG, auth_data: {} })).status).toBe(404);
    expect((await call(alice, 'GET', '/room_keys/version')).body.version).toBe('1');
    const never = await call(alice, 'DELETE', '/room_keys/version/42');
    expect(never.status).toBe(404);
    expect(never.body.errcode).toBe('M_NOT_FOUND');

    // Version numbers are never reused.
    expect((await call(alice, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: {} })).body.version).toBe('3');
  });

  it('validates version bodies', async () => {
    const missing = await call(alice, 'POST', '/room_keys/version', { auth_data: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.errcode).toBe('M_MISSING_PARAM');
    const badType = await call(alice, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: 'nope' });
    expect(badType.status).toBe(400);
    expect(badType.body.errcode).toBe('M_BAD_JSON');
    const badJson = await request(server.baseUrl, 'POST', `${V3}/room_keys/version`, { token: alice.accessToken, rawBody: '{', headers: { 'content-type': 'application/json' } });
    expect(badJson.body.errcode).toBe('M_NOT_JSON');
    const noAuth = await request(server.baseUrl, 'GET', `${V3}/room_keys/version`);
    expect(noAuth.status).toBe(401);
  });

  it('stores and reads keys at all three levels, with count and etag', async () => {
    const { user, version } = await userWithBackup();
    const q = `?version=${version}`;
    const roomA = '!a:localhost';
    const roomB = '!b:localhost';
    // Real megolm session ids are unpadded base64 and may contain '/' and '+'.
    const s1 = 'sess+one/ABC';

    const info0 = await call(user, 'GET', `/room_keys/version/${version}`);
    expect(info0.body.count).toBe(0);

    // Top level.
    const put1 = await call(user, 'PUT', `/room_keys/keys${q}`, {
      rooms: { [roomA]: { sessions: { [s1]: key(0, 0, false, 'a1'), s2: key(3, 1, true, 'a2') } }, [roomB]: { sessions: { s3: key(0, 0, true, 'b3') } } },
    });
    expect(put1.status).toBe(200);
    expect(put1.body).toEqual({ etag: expect.any(String), count: 3 });

    // Room level.
    const put2 = await call(user, 'PUT', `/room_keys/keys/${enc(roomB)}${q}`, { sessions: { s4: key(0, 0, false, 'b4') } });
    expect(put2.body.count).toBe(4);
    expect(put2.body.etag).not.toBe(put1.body.etag);

    // Session level.
    const put3 = await call(user, 'PUT', `/room_keys/keys/${enc(roomB)}/s5${q}`, key(7, 0, false, 'b5'));
    expect(put3.body.count).toBe(5);
    expect(put3.body.etag).not.toBe(put2.body.etag);

    const info = await call(user, 'GET', `/room_keys/version/${version}`);
    expect(info.body).toMatchObject({ count: 5, etag: put3.body.etag, version });

    const all = await call(user, 'GET', `/room_keys/keys${q}`);
    expect(all.status).toBe(200);
    expect(all.body).toEqual({
      rooms: {
        [roomA]: { sessions: { [s1]: key(0, 0, false, 'a1'), s2: key(3, 1, true, 'a2') } },
        [roomB]: { sessions: { s3: key(0, 0, true, 'b3'), s4: key(0, 0, false, 'b4'), s5: key(7, 0, false, 'b5') } },
      },
    });
    const room = await call(user, 'GET', `/room_keys/keys/${enc(roomA)}${q}`);
    expect(room.body).toEqual({ sessions: { [s1]: key(0, 0, false, 'a1'), s2: key(3, 1, true, 'a2') } });
    const one = await call(user, 'GET', `/room_keys/keys/${enc(roomA)}/${enc(s1)}${q}`);
    expect(one.status).toBe(200);
    expect(one.body).toEqual(key(0, 0, false, 'a1'));

    // Missing things: room level is an empty map, session level is 404, top level of an empty backup is {rooms: {}}.
    expect((await call(user, 'GET', `/room_keys/keys/${enc('!nope:localhost')}${q}`)).body).toEqual({ sessions: {} });
    const noKey = await call(user, 'GET', `/room_keys/keys/${enc(roomA)}/nope${q}`);
    expect(noKey.status).toBe(404);
    expect(noKey.body.errcode).toBe('M_NOT_FOUND');
    // The same session id in another room is a different key.
    expect((await call(user, 'GET', `/room_keys/keys/${enc(roomB)}/${enc(s1)}${q}`)).status).toBe(404);

    // An upload that changes nothing leaves the etag alone.
    const same = await call(user, 'PUT', `/room_keys/keys/${enc(roomB)}/s5${q}`, key(7, 0, false, 'b5-again'));
    expect(same.body).toEqual({ etag: put3.body.etag, count: 5 });
    expect((await call(user, 'GET', `/room_keys/keys/${enc(roomB)}/s5${q}`)).body.session_data.ciphertext).toBe('ct-b5');

    // Deletes at each level, each moving the etag and the count.
    const del1 = await call(user, 'DELETE', `/room_keys/keys/${enc(roomA)}/${enc(s1)}${q}`);
    expect(del1.status).toBe(200);
    expect(del1.body.count).toBe(4);
    expect(del1.body.etag).not.toBe(put3.body.etag);
    const del2 = await call(user, 'DELETE', `/room_keys/keys/${enc(roomB)}${q}`);
    expect(del2.body.count).toBe(1);
    expect(del2.body.etag).not.toBe(del1.body.etag);
    // Deleting what is not there changes nothing.
    const del3 = await call(user, 'DELETE', `/room_keys/keys/${enc(roomB)}${q}`);
    expect(del3.body).toEqual(del2.body);
    const del4 = await call(user, 'DELETE', `/room_keys/keys${q}`);
    expect(del4.body.count).toBe(0);
    expect(del4.body.etag).not.toBe(del2.body.etag);
    expect((await call(user, 'GET', `/room_keys/keys${q}`)).body).toEqual({ rooms: {} });
    expect((await call(user, 'GET', `/room_keys/version/${version}`)).body).toMatchObject({ count: 0, etag: del4.body.etag });
  });

  it('keeps the better key when a session is uploaded again', async () => {
    // [existing, uploaded, which one the backup keeps] — spec "Server-side key backups".
    const cases: Array<[string, Key, Key, 'existing' | 'uploaded']> = [
      ['verified beats unverified', key(0, 0, false, 'e'), key(5, 3, true, 'u'), 'uploaded'],
      ['unverified never beats verified', key(5, 3, true, 'e'), key(0, 0, false, 'u'), 'existing'],
      ['lower first_message_index wins', key(5, 0, false, 'e'), key(2, 9, false, 'u'), 'uploaded'],
      ['higher first_message_index loses', key(2, 9, true, 'e'), key(5, 0, true, 'u'), 'existing'],
      ['same index: lower forwarded_count wins', key(3, 2, true, 'e'), key(3, 1, true, 'u'), 'uploaded'],
      ['same index: higher forwarded_count loses', key(3, 1, false, 'e'), key(3, 2, false, 'u'), 'existing'],
      ['complete tie keeps the existing key', key(3, 1, true, 'e'), key(3, 1, true, 'u'), 'existing'],
    ];
    const { user, version } = await userWithBackup();
    const q = `?version=${version}`;
    const room = '!rule:localhost';

    // First store every existing key, then upload every candidate in one request.
    const existing = Object.fromEntries(cases.map(([name, e]) => [name, e]));
    const first = await call(user, 'PUT', `/room_keys/keys/${enc(room)}${q}`, { sessions: existing });
    expect(first.body.count).toBe(cases.length);
    const second = await call(user, 'PUT', `/room_keys/keys/${enc(room)}${q}`, { sessions: Object.fromEntries(cases.map(([name, , u]) => [name, u])) });
    expect(second.body.count).toBe(cases.length);
    expect(second.body.etag).not.toBe(first.body.etag);

    const stored = (await call(user, 'GET', `/room_keys/keys/${enc(room)}${q}`)).body.sessions as Record<string, Key>;
    for (const [name, e, u, winner] of cases) {
      expect({ name, key: stored[name] }).toEqual({ name, key: winner === 'existing' ? e : u });
    }

    // The same rule through the session-level endpoint.
    for (const [name, e, u, winner] of cases) {
      const path = `/room_keys/keys/${enc(room)}/${enc(`single ${name}`)}${q}`;
      await call(user, 'PUT', path, e);
      await call(user, 'PUT', path, u);
      expect({ name, key: (await call(user, 'GET', path)).body }).toEqual({ name, key: winner === 'existing' ? e : u });
    }
  });

  it('only accepts keys for the current version', async () => {
    const user = await registerUser(server.baseUrl, `kbv${n++}`);
    const body = { rooms: { '!r:localhost': { sessions: { s: key(0, 0, false, 'x') } } } };

    const noBackup = await call(user, 'PUT', '/room_keys/keys?version=1', body);
    expect(noBackup.status).toBe(404);
    expect(noBackup.body.errcode).toBe('M_NOT_FOUND');

    await call(user, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: {} });
    expect((await call(user, 'PUT', '/room_keys/keys?version=1', body)).status).toBe(200);
    await call(user, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: {} });

    for (const path of ['/room_keys/keys?version=1', '/room_keys/keys/!r:localhost?version=1', '/room_keys/keys/!r:localhost/s?version=1']) {
      const payload = path.endsWith('/s?version=1') ? key(0, 0, true, 'y') : path.includes('/keys/') ? body.rooms['!r:localhost'] : body;
      const res = await call(user, 'PUT', path, payload);
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ errcode: 'M_WRONG_ROOM_KEYS_VERSION', current_version: '2' });
    }
    const unknown = await call(user, 'PUT', '/room_keys/keys?version=77', body);
    expect(unknown.status).toBe(403);
    expect(unknown.body).toMatchObject({ errcode: 'M_WRONG_ROOM_KEYS_VERSION', current_version: '2' });

    // Keys of an older live version can still be read and deleted; a deleted version's cannot.
    expect(Object.keys((await call(user, 'GET', '/room_keys/keys?version=1')).body.rooms)).toEqual(['!r:localhost']);
    expect((await call(user, 'GET', '/room_keys/keys?version=2')).body).toEqual({ rooms: {} });
    await call(user, 'DELETE', '/room_keys/version/1');
    for (const method of ['GET', 'DELETE']) {
      for (const path of ['/room_keys/keys?version=1', `/room_keys/keys/${enc('!r:localhost')}?version=1`, `/room_keys/keys/${enc('!r:localhost')}/s?version=1`]) {
        const res = await call(user, method, path);
        expect({ method, path, status: res.status, errcode: res.body.errcode }).toEqual({ method, path, status: 404, errcode: 'M_NOT_FOUND' });
      }
    }
    expect((await call(user, 'GET', '/room_keys/keys?version=bogus')).status).toBe(404);

    // Deleting a version deletes its keys: the current version's count is unaffected, the deleted one's are gone.
    await call(user, 'PUT', '/room_keys/keys?version=2', body);
    await call(user, 'DELETE', '/room_keys/version/2');
    expect((await call(user, 'GET', '/room_keys/version')).status).toBe(404);
    const v3 = await call(user, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: {} });
    expect((await call(user, 'GET', `/room_keys/version/${v3.body.version}`)).body.count).toBe(0);
  });

  it('requires the version parameter and valid key bodies', async () => {
    const { user, version } = await userWithBackup();
    const room = enc('!r:localhost');
    for (const [method, path, body] of [
      ['GET', '/room_keys/keys', undefined],
      ['GET', `/room_keys/keys/${room}`, undefined],
      ['GET', `/room_keys/keys/${room}/s`, undefined],
      ['DELETE', '/room_keys/keys', undefined],
      ['DELETE', `/room_keys/keys/${room}`, undefined],
      ['DELETE', `/room_keys/keys/${room}/s`, undefined],
      ['PUT', '/room_keys/keys', { rooms: {} }],
      ['PUT', `/room_keys/keys/${room}`, { sessions: {} }],
      ['PUT', `/room_keys/keys/${room}/s`, key(0, 0, false, 'k')],
    ] as const) {
      const res = await call(user, method, path, body);
      expect({ method, path, status: res.status, errcode: res.body.errcode }).toEqual({ method, path, status: 400, errcode: 'M_MISSING_PARAM' });
    }

    const q = `?version=${version}`;
    const bad: Array<[string, unknown]> = [
      [`/room_keys/keys${q}`, { rooms: { '!r:localhost': { sessions: { s: { ...key(0, 0, false, 'k'), is_verified: 'yes' } } } } }],
      [`/room_keys/keys${q}`, { rooms: { '!r:localhost': { sessions: [] } } }],
      [`/room_keys/keys${q}`, { rooms: 'x' }],
      [`/room_keys/keys/${room}${q}`, { sessions: { s: { ...key(0, 0, false, 'k'), first_message_index: -1 } } }],
      [`/room_keys/keys/${room}${q}`, { sessions: { s: { ...key(0, 0, false, 'k'), forwarded_count: 1.5 } } }],
      [`/room_keys/keys/${room}/s${q}`, { ...key(0, 0, false, 'k'), session_data: 'ciphertext' }],
      [`/room_keys/keys/${room}/s${q}`, { first_message_index: 0, forwarded_count: 0, is_verified: false, session_data: [1] }],
    ];
    for (const [path, body] of bad) {
      const res = await call(user, 'PUT', path, body);
      expect({ path, body, status: res.status, errcode: res.body.errcode }).toEqual({ path, body, status: 400, errcode: 'M_BAD_JSON' });
    }
    const missingField = await call(user, 'PUT', `/room_keys/keys/${room}/s${q}`, { first_message_index: 0, forwarded_count: 0, session_data: {} });
    expect(missingField.status).toBe(400);
    expect(missingField.body.errcode).toBe('M_MISSING_PARAM');
    const tooLong = await call(user, 'PUT', `/room_keys/keys${q}`, { rooms: { ['!' + 'x'.repeat(300)]: { sessions: {} } } });
    expect(tooLong.status).toBe(400);
    const tooLongPath = await call(user, 'PUT', `/room_keys/keys/${room}/${'s'.repeat(300)}${q}`, key(0, 0, false, 'k'));
    expect(tooLongPath.status).toBe(400);
    expect(tooLongPath.body.errcode).toBe('M_INVALID_PARAM');
    // Nothing of the rejected requests was stored.
    expect((await call(user, 'GET', `/room_keys/version/${version}`)).body.count).toBe(0);
  });

  it("keeps users' backups apart", async () => {
    const { user: carol, version } = await userWithBackup();
    const dave = await registerUser(server.baseUrl, `kbd${n++}`);
    await call(carol, 'PUT', `/room_keys/keys?version=${version}`, { rooms: { '!r:localhost': { sessions: { s: key(0, 0, true, 'c') } } } });

    expect((await call(dave, 'GET', '/room_keys/version')).status).toBe(404);
    expect((await call(dave, 'GET', `/room_keys/version/${version}`)).status).toBe(404);
    expect((await call(dave, 'GET', `/room_keys/keys?version=${version}`)).status).toBe(404);
    expect((await call(dave, 'DELETE', `/room_keys/keys?version=${version}`)).status).toBe(404);
    expect((await call(dave, 'DELETE', `/room_keys/version/${version}`)).status).toBe(404);
    expect((await call(dave, 'PUT', `/room_keys/version/${version}`, { algorithm: ALG, auth_data: {} })).status).toBe(404);

    // Dave's own backup is numbered independently and holds only his keys.
    const mine = await call(dave, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: {} });
    expect(mine.body.version).toBe('1');
    expect((await call(dave, 'GET', `/room_keys/keys?version=${mine.body.version}`)).body).toEqual({ rooms: {} });
    // …and deleting Dave's keys leaves Carol's in place.
    await call(dave, 'DELETE', `/room_keys/keys?version=${mine.body.version}`);
    expect((await call(carol, 'GET', `/room_keys/version/${version}`)).body.count).toBe(1);
    expect((await call(bob, 'GET', '/room_keys/version')).status).toBe(404);
  });

  it('serves the matrix-js-sdk key backup calls', async () => {
    const { user, version } = await userWithBackup();
    const client = sdkClient(server.baseUrl, user);
    const room = '!sdk:localhost';
    await call(user, 'PUT', `/room_keys/keys?version=${version}`, {
      rooms: { [room]: { sessions: { a: key(0, 0, true, 'a'), b: key(0, 0, true, 'b') } } },
    });
    await client.deleteKeysFromBackup(room, 'a', version);
    expect((await call(user, 'GET', `/room_keys/version/${version}`)).body.count).toBe(1);
    await client.deleteKeysFromBackup(room, undefined, version);
    expect((await call(user, 'GET', `/room_keys/version/${version}`)).body.count).toBe(0);
    client.stopClient();
  });

  it('handles concurrent uploads of the same sessions without losing or duplicating keys', async () => {
    const { user, version } = await userWithBackup();
    const room = '!busy:localhost';
    const uploads = Array.from({ length: 8 }, (_, i) =>
      call(user, 'PUT', `/room_keys/keys?version=${version}`, {
        rooms: { [room]: { sessions: Object.fromEntries(Array.from({ length: 20 }, (_, s) => [`s${s}`, key(8 - i, 0, false, `u${i}`)])) } },
      }),
    );
    const results = await Promise.all(uploads);
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(200));
    const stored = (await call(user, 'GET', `/room_keys/keys/${enc(room)}?version=${version}`)).body.sessions as Record<string, Key>;
    expect(Object.keys(stored)).toHaveLength(20);
    // Whatever the order, the lowest first_message_index ends up stored.
    expect(new Set(Object.values(stored).map((k) => k.first_message_index))).toEqual(new Set([1]));
  });

  // Synapse stores any JSON value as auth_data and session_data; SyTest's backups use strings with "m.megolm_backup.v1".
  it('keeps opaque auth_data and session_data of algorithms the spec does not define', async () => {
    const user = await registerUser(server.baseUrl, `kb${n++}`);
    // The spec's schemas describe objects, so its response check does not apply here.
    const call = (u: TestUser, method: string, path: string, body?: unknown) =>
      request(server.baseUrl, method, V3 + path, { token: u.accessToken, body, skipSpecCheck: true });
    const OTHER = 'm.megolm_backup.v1';
    const created = await call(user, 'POST', '/room_keys/version', { algorithm: OTHER, auth_data: 'anopaquestring' });
    expect(created.status).toBe(200);
    const version = created.body.version as string;
    expect((await call(user, 'GET', '/room_keys/version')).body).toMatchObject({ algorithm: OTHER, auth_data: 'anopaquestring', version });
    const updated = await call(user, 'PUT', `/room_keys/version/${version}`, { algorithm: OTHER, auth_data: ['a', 1, null], version });
    expect(updated.status).toBe(200);
    expect((await call(user, 'GET', `/room_keys/version/${version}`)).body.auth_data).toEqual(['a', 1, null]);
    expect((await call(user, 'POST', '/room_keys/version', { algorithm: OTHER })).body.errcode).toBe('M_MISSING_PARAM');

    const q = `?version=${version}`;
    const sessionKey = { first_message_index: 3, forwarded_count: 0, is_verified: false, session_data: 'anopaquestring' };
    expect((await call(user, 'PUT', `/room_keys/keys/${enc('!abcd')}/1234${q}`, sessionKey)).status).toBe(200);
    expect((await call(user, 'GET', `/room_keys/keys/${enc('!abcd')}/1234${q}`)).body).toEqual(sessionKey);
    const better = { ...sessionKey, first_message_index: 1, session_data: 7 };
    expect((await call(user, 'PUT', `/room_keys/keys${q}`, { rooms: { '!abcd': { sessions: { '1234': better } } } })).status).toBe(200);
    expect((await call(user, 'GET', `/room_keys/keys${q}`)).body).toEqual({ rooms: { '!abcd': { sessions: { '1234': better } } } });
    const noData = await call(user, 'PUT', `/room_keys/keys/${enc('!abcd')}/5678${q}`, { first_message_index: 0, forwarded_count: 0, is_verified: false });
    expect(noData.body.errcode).toBe('M_MISSING_PARAM');

    // The spec's algorithm keeps its object shapes.
    const strict = await call(user, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: 'anopaquestring' });
    expect(strict.body.errcode).toBe('M_BAD_JSON');
  });
});
