import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, signJson } from '../../src/crypto/signing.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const V3 = '/_matrix/client/v3';

/** A device identity as a client would make it: an ed25519 key that signs its own device keys. */
function deviceKeysFor(user: TestUser) {
  const key = generateSigningKey(user.deviceId);
  const keys = signJson(
    {
      user_id: user.userId,
      device_id: user.deviceId,
      algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
      keys: { [`curve25519:${user.deviceId}`]: `curve-${user.deviceId}`, [`ed25519:${user.deviceId}`]: key.publicKey },
    },
    user.userId,
    { ...key, keyId: `ed25519:${user.deviceId}` },
  );
  return { key, keys };
}

describe.each(testDialects())('device keys on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  const post = (user: TestUser, path: string, body: unknown) => request(server.baseUrl, 'POST', V3 + path, { token: user.accessToken, body });

  it('uploads device keys and one-time keys and reports counts', async () => {
    const { keys } = deviceKeysFor(alice);
    const otks = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`signed_curve25519:K${i}`, { key: `otk${i}`, signatures: {} }]));
    const res = await post(alice, '/keys/upload', { device_keys: keys, one_time_keys: otks });
    expect(res.status).toBe(200);
    expect(res.body.one_time_key_counts.signed_curve25519).toBe(5);

    const query = await post(bob, '/keys/query', { device_keys: { [alice.userId]: [] } });
    expect(query.status).toBe(200);
    const got = query.body.device_keys[alice.userId][alice.deviceId];
    expect(got.keys).toEqual(keys.keys);
    expect(got.signatures).toEqual(keys.signatures);
  });

  it('replaces a device\'s keys when it uploads different ones, as Synapse, and tells users sharing a room', async () => {
    const room = await post(alice, '/createRoom', { preset: 'public_chat' });
    await post(bob, `/join/${encodeURIComponent(room.body.room_id)}`, {});
    const sync = (since?: string) =>
      request(server.baseUrl, 'GET', `${V3}/sync?timeout=0${since ? `&since=${encodeURIComponent(since)}` : ''}`, { token: bob.accessToken });
    let since = (await sync()).body.next_batch;

    const current = (await post(bob, '/keys/query', { device_keys: { [alice.userId]: [alice.deviceId] } })).body.device_keys[alice.userId][alice.deviceId];
    const { unsigned: _unsigned, ...same } = current;
    expect((await post(alice, '/keys/upload', { device_keys: same })).status).toBe(200);
    let res = await sync(since);
    expect(res.body.device_lists?.changed ?? []).not.toContain(alice.userId);
    since = res.body.next_batch;

    const other = deviceKeysFor(alice).keys;
    const upload = await post(alice, '/keys/upload', { device_keys: other });
    expect(upload.status).toBe(200);
    res = await sync(since);
    expect(res.body.device_lists.changed).toContain(alice.userId);
    const query = await post(bob, '/keys/query', { device_keys: { [alice.userId]: [alice.deviceId] } });
    expect(query.body.device_keys[alice.userId][alice.deviceId].keys).toEqual(other.keys);
  });

  it('refuses device keys for another device', async () => {
    const forBob = deviceKeysFor(bob).keys;
    const res = await post(alice, '/keys/upload', { device_keys: forBob });
    expect(res.status).toBe(400);
  });

  it('hands out one-time keys in upload order, each once, then the fallback key which stays', async () => {
    const carol = await registerUser(server.baseUrl, 'carol');
    const otks = Object.fromEntries(['Z', 'A', 'M'].map((id) => [`signed_curve25519:${id}`, { key: `otk-${id}`, signatures: {} }]));
    await post(carol, '/keys/upload', { one_time_keys: otks, fallback_keys: { 'signed_curve25519:FB': { key: 'fallback', fallback: true, signatures: {} } } });
    const claim = () => post(bob, '/keys/claim', { one_time_keys: { [carol.userId]: { [carol.deviceId]: 'signed_curve25519' } } });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await claim();
      ids.push(Object.keys(res.body.one_time_keys[carol.userId][carol.deviceId])[0]!);
    }
    expect(ids).toEqual(['signed_curve25519:Z', 'signed_curve25519:A', 'signed_curve25519:M', 'signed_curve25519:FB', 'signed_curve25519:FB']);
    const counts = await post(carol, '/keys/upload', {});
    expect(counts.body.one_time_key_counts.signed_curve25519).toBe(0);
  });

  it('never returns the same one-time key twice under 20 concurrent claims', async () => {
    const dave = await registerUser(server.baseUrl, 'dave');
    const otks = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`signed_curve25519:D${i}`, { key: `k${i}`, signatures: {} }]));
    await post(dave, '/keys/upload', { one_time_keys: otks });
    const results = await Promise.all(
      Array.from({ length: 20 }, () => post(bob, '/keys/claim', { one_time_keys: { [dave.userId]: { [dave.deviceId]: 'signed_curve25519' } } })),
    );
    const claimed = results.map((r) => Object.keys(r.body.one_time_keys[dave.userId][dave.deviceId])[0]);
    expect(new Set(claimed).size).toBe(20);
    const counts = await post(dave, '/keys/upload', {});
    expect(counts.body.one_time_key_counts.signed_curve25519).toBe(10);
  });

  it('rejects a re-used one-time key id with different content', async () => {
    await post(bob, '/keys/upload', { one_time_keys: { 'signed_curve25519:SAME': { key: 'one', signatures: {} } } });
    const again = await post(bob, '/keys/upload', { one_time_keys: { 'signed_curve25519:SAME': { key: 'one', signatures: {} } } });
    expect(again.status).toBe(200);
    const different = await post(bob, '/keys/upload', { one_time_keys: { 'signed_curve25519:SAME': { key: 'two', signatures: {} } } });
    expect(different.status).toBe(400);
  });

  it('uploads cross-signing keys, validates signatures, and shows them in queries', async () => {
    const erin = await registerUser(server.baseUrl, 'erin');
    const device = deviceKeysFor(erin);
    await post(erin, '/keys/upload', { device_keys: device.keys });
    const master = generateSigningKey();
    const selfSigning = generateSigningKey();
    const asKeyId = (k: typeof master) => ({ ...k, keyId: `ed25519:${k.publicKey}` });
    const masterKey = { user_id: erin.userId, usage: ['master'], keys: { [`ed25519:${master.publicKey}`]: master.publicKey } };
    const sskUnsigned = { user_id: erin.userId, usage: ['self_signing'], keys: { [`ed25519:${selfSigning.publicKey}`]: selfSigning.publicKey } };

    const badSsk = await post(erin, '/keys/device_signing/upload', { master_key: masterKey, self_signing_key: sskUnsigned });
    expect(badSsk.status).toBe(400);

    const ssk = signJson(sskUnsigned, erin.userId, asKeyId(master));
    const ok = await post(erin, '/keys/device_signing/upload', { master_key: masterKey, self_signing_key: ssk });
    expect(ok.status).toBe(200);

    // Replacing the master key needs the password again.
    const other = generateSigningKey();
    const replace = await post(erin, '/keys/device_signing/upload', {
      master_key: { user_id: erin.userId, usage: ['master'], keys: { [`ed25519:${other.publicKey}`]: other.publicKey } },
    });
    expect(replace.status).toBe(401);
    expect(replace.body.flows).toBeDefined();

    const signedDevice = signJson(device.keys, erin.userId, asKeyId(selfSigning));
    const sigs = await post(erin, '/keys/signatures/upload', { [erin.userId]: { [erin.deviceId]: signedDevice } });
    expect(sigs.status).toBe(200);
    expect(sigs.body.failures).toEqual({});

    const forged = signJson(device.keys, erin.userId, { ...generateSigningKey(), keyId: `ed25519:${selfSigning.publicKey}` });
    const bad = await post(erin, '/keys/signatures/upload', { [erin.userId]: { [erin.deviceId]: forged } });
    expect(Object.keys(bad.body.failures[erin.userId] ?? {})).toEqual([erin.deviceId]);

    const query = await post(bob, '/keys/query', { device_keys: { [erin.userId]: [] } });
    expect(query.body.master_keys[erin.userId].keys).toEqual(masterKey.keys);
    expect(query.body.self_signing_keys[erin.userId].keys).toEqual(ssk.keys);
    expect(query.body.user_signing_keys[erin.userId]).toBeUndefined();
    const deviceSigs = query.body.device_keys[erin.userId][erin.deviceId].signatures[erin.userId];
    expect(deviceSigs[`ed25519:${selfSigning.publicKey}`]).toBe(signedDevice.signatures[erin.userId]![`ed25519:${selfSigning.publicKey}`]);
  });

  // matrix-js-sdk (Element) uploads cross-signing keys under /unstable; same route, same re-authentication.
  it('takes cross-signing keys at the unstable path Element uses, with the same user-interactive auth', async () => {
    const gina = await registerUser(server.baseUrl, 'gina');
    const upload = (body: unknown) =>
      request(server.baseUrl, 'POST', '/_matrix/client/unstable/keys/device_signing/upload', { token: gina.accessToken, body, skipSpecCheck: true });
    const masterFor = (k: ReturnType<typeof generateSigningKey>) => ({ user_id: gina.userId, usage: ['master'], keys: { [`ed25519:${k.publicKey}`]: k.publicKey } });
    const first = masterFor(generateSigningKey());
    expect((await upload({ master_key: first })).status).toBe(200);
    const second = masterFor(generateSigningKey());
    const challenge = await upload({ master_key: second });
    expect(challenge.status).toBe(401);
    expect(challenge.body.flows).toBeDefined();
    const auth = { type: 'm.login.password', identifier: { type: 'm.id.user', user: gina.userId }, password: gina.password, session: challenge.body.session };
    expect((await upload({ master_key: second, auth })).status).toBe(200);
    const query = await post(bob, '/keys/query', { device_keys: { [gina.userId]: [] } });
    expect(query.body.master_keys[gina.userId].keys).toEqual(second.keys);
  });

  // As Synapse (SyTest 08-cross-signing): an unsigned master key comes back as uploaded, and a user-signing key
  // or a signature on someone else's master key is news for the signer's devices only.
  it('tells only the signer of user-signing keys and their signatures, and returns unsigned keys as uploaded', async () => {
    const [hana, ivan] = [await registerUser(server.baseUrl, 'hana'), await registerUser(server.baseUrl, 'ivan')];
    const room = await post(hana, '/createRoom', { preset: 'public_chat' });
    await post(ivan, `/join/${encodeURIComponent(room.body.room_id)}`, {});
    const syncOf = (user: TestUser) => {
      let since: string | undefined;
      return async (): Promise<string[]> => {
        const res = await request(server.baseUrl, 'GET', `${V3}/sync?timeout=0${since ? `&since=${encodeURIComponent(since)}` : ''}`, { token: user.accessToken });
        since = res.body.next_batch;
        return res.body.device_lists?.changed ?? [];
      };
    };
    const [hanaSync, ivanSync] = [syncOf(hana), syncOf(ivan)];
    await hanaSync();
    await ivanSync();
    const asKeyId = (k: ReturnType<typeof generateSigningKey>) => ({ ...k, keyId: `ed25519:${k.publicKey}` });
    const crossKey = (user: TestUser, usage: string, k: ReturnType<typeof generateSigningKey>) => ({ user_id: user.userId, usage: [usage], keys: { [`ed25519:${k.publicKey}`]: k.publicKey } });

    const hanaMaster = generateSigningKey();
    const hanaMasterKey = crossKey(hana, 'master', hanaMaster);
    expect((await post(hana, '/keys/device_signing/upload', { master_key: hanaMasterKey })).status).toBe(200);
    expect((await post(ivan, '/keys/query', { device_keys: { [hana.userId]: [] } })).body.master_keys[hana.userId]).toEqual(hanaMasterKey);
    expect(await ivanSync()).toContain(hana.userId);
    expect(await hanaSync()).toContain(hana.userId);

    const userSigning = generateSigningKey();
    const usk = signJson(crossKey(hana, 'user_signing', userSigning), hana.userId, asKeyId(hanaMaster));
    const auth = { type: 'm.login.password', identifier: { type: 'm.id.user', user: hana.userId }, password: hana.password };
    expect((await post(hana, '/keys/device_signing/upload', { user_signing_key: usk, auth })).status).toBe(200);
    expect(await hanaSync()).toContain(hana.userId);
    expect(await ivanSync()).not.toContain(hana.userId);

    const ivanMasterKey = crossKey(ivan, 'master', generateSigningKey());
    expect((await post(ivan, '/keys/device_signing/upload', { master_key: ivanMasterKey })).status).toBe(200);
    expect(await hanaSync()).toContain(ivan.userId);
    expect(await ivanSync()).toContain(ivan.userId);
    const signed = signJson(ivanMasterKey, hana.userId, asKeyId(userSigning));
    const upload = await request(server.baseUrl, 'POST', '/_matrix/client/unstable/keys/signatures/upload', {
      token: hana.accessToken,
      body: { [ivan.userId]: { [Object.values(ivanMasterKey.keys)[0]!]: signed } },
      skipSpecCheck: true,
    });
    expect(upload.status).toBe(200);
    expect(upload.body.failures).toEqual({});
    expect(await hanaSync()).toEqual([ivan.userId]);
    expect(await ivanSync()).toEqual([]);
    expect((await post(hana, '/keys/query', { device_keys: { [ivan.userId]: [] } })).body.master_keys[ivan.userId].signatures[hana.userId]).toBeDefined();
    expect((await post(ivan, '/keys/query', { device_keys: { [ivan.userId]: [] } })).body.master_keys[ivan.userId]).toEqual(ivanMasterKey);
  });

  // As Synapse (SyTest "Rejects invalid device keys"): device keys without algorithms, keys or signatures are M_BAD_JSON.
  it('rejects device keys with missing fields as M_BAD_JSON', async () => {
    const { keys } = deviceKeysFor(alice);
    for (const field of ['algorithms', 'keys', 'signatures'] as const) {
      const { [field]: _dropped, ...rest } = keys;
      const res = await post(alice, '/keys/upload', { device_keys: rest });
      expect({ field, status: res.status, errcode: res.body.errcode }).toEqual({ field, status: 400, errcode: 'M_BAD_JSON' });
    }
    const wrongType = await post(alice, '/keys/upload', { device_keys: { ...keys, keys: [] } });
    expect(wrongType.body.errcode).toBe('M_BAD_JSON');
  });

  // A renamed device shows its new name in /keys/query, so users sharing a room re-fetch (as Synapse).
  it('tells users sharing a room when a device is renamed', async () => {
    const [jack, kate] = [await registerUser(server.baseUrl, 'jack'), await registerUser(server.baseUrl, 'kate')];
    const room = await post(jack, '/createRoom', { preset: 'public_chat' });
    await post(kate, `/join/${encodeURIComponent(room.body.room_id)}`, {});
    const sync = (since?: string) =>
      request(server.baseUrl, 'GET', `${V3}/sync?timeout=0${since ? `&since=${encodeURIComponent(since)}` : ''}`, { token: jack.accessToken });
    const since = (await sync()).body.next_batch;
    const renamed = await request(server.baseUrl, 'PUT', `${V3}/devices/${kate.deviceId}`, { token: kate.accessToken, body: { display_name: 'wibble' } });
    expect(renamed.status).toBe(200);
    expect((await sync(since)).body.device_lists?.changed).toContain(kate.userId);
  });

  // As Synapse: someone invited into a room we are in is in device_lists.changed, so clients can encrypt for them.
  it('lists a user invited into a shared room as changed', async () => {
    const [lena, mike] = [await registerUser(server.baseUrl, 'lena'), await registerUser(server.baseUrl, 'mike')];
    const room = await post(lena, '/createRoom', {});
    const sync = (since?: string) =>
      request(server.baseUrl, 'GET', `${V3}/sync?timeout=0${since ? `&since=${encodeURIComponent(since)}` : ''}`, { token: lena.accessToken });
    const since = (await sync()).body.next_batch;
    expect((await post(lena, `/rooms/${encodeURIComponent(room.body.room_id)}/invite`, { user_id: mike.userId })).status).toBe(200);
    expect((await sync(since)).body.device_lists?.changed).toContain(mike.userId);
  });

  it('deletes a device\'s keys with the device', async () => {
    const frank = await registerUser(server.baseUrl, 'frank');
    await post(frank, '/keys/upload', { device_keys: deviceKeysFor(frank).keys });
    const del = await request(server.baseUrl, 'DELETE', `${V3}/devices/${frank.deviceId}`, {
      token: frank.accessToken,
      body: { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: frank.userId }, password: frank.password } },
    });
    expect(del.status).toBe(200);
    const query = await post(bob, '/keys/query', { device_keys: { [frank.userId]: [] } });
    expect(query.body.device_keys[frank.userId]).toEqual({});
  });

  it('reports remote servers it cannot reach in failures', async () => {
    const res = await post(alice, '/keys/query', { device_keys: { '@someone:elsewhere.example': [] } });
    expect(res.status).toBe(200);
    expect(res.body.failures['elsewhere.example']).toBeDefined();
  });
});
