import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBase64 } from '../../src/crypto/base64.js';
import { signJson, signingKeyFromSeed, type SigningKey } from '../../src/crypto/signing.js';
import {
  deleteDevice,
  loginDevice,
  sendText,
  specViolations,
  startCryptoClient,
  stopClients,
  waitForDecrypted,
  waitForDevices,
  waitForRoom,
} from '../helpers/crypto.js';
import { freePort, startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { assertSpecShaped } from '../helpers/specSchema.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { createTestCa, issueCert } from './tls.js';

// End-to-end encryption across two Skjól servers over real HTTPS (as in join-and-message.test.ts):
//   A localhost:<port>  — alice
//   B 127.0.0.1:<port>  — bob, who owns the room; alice joins it over federation

type SyncBody = Record<string, any>;

/** Requests each server's federation client sent (`METHOD path`), for asserting which path was taken. */
const sent = new WeakMap<TestServer, string[]>();
const sentBy = (server: TestServer) => sent.get(server) ?? [];

/** Every federation response a server receives is checked against the spec's server-server schemas. */
function specChecked(server: TestServer): TestServer {
  const client = server.hs.services.federation.client;
  const original = client.request.bind(client);
  const log: string[] = [];
  sent.set(server, log);
  client.request = (async (req: Parameters<typeof original>[0]) => {
    log.push(`${req.method} ${req.path}`);
    const res = await original(req);
    if (req.signed !== false) assertSpecShaped(req.method, req.path, 200, res);
    return res;
  }) as typeof client.request;
  return server;
}

async function sync(server: TestServer, user: TestUser, since?: string, timeout = 0): Promise<SyncBody> {
  const q = new URLSearchParams({ timeout: String(timeout) });
  if (since) q.set('since', since);
  const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/sync?${q}`, { token: user.accessToken });
  expect(res.status).toBe(200);
  return res.body;
}

async function syncUntil<T>(server: TestServer, user: TestUser, since: string, probe: (body: SyncBody) => T | undefined, what: string, ms = 20_000): Promise<{ value: T; since: string }> {
  const until = Date.now() + ms;
  let token = since;
  for (;;) {
    const body = await sync(server, user, token, 500);
    token = body.next_batch;
    const value = probe(body);
    if (value !== undefined) return { value, since: token };
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
  }
}

const changedIncludes = (userId: string) => (b: SyncBody) => ((b.device_lists?.changed ?? []) as string[]).includes(userId) || undefined;

async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, what: string, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** An ed25519 key whose key id is its public key (as device and cross-signing keys are named). */
function edKey(name?: string): SigningKey {
  const k = signingKeyFromSeed('x', randomBytes(32));
  return { ...k, version: name ?? k.publicKey, keyId: `ed25519:${name ?? k.publicKey}` };
}

/** Signed device keys as a client would upload them, with a fresh identity. */
function deviceKeys(user: TestUser, deviceId: string): Record<string, unknown> {
  const ed = edKey(deviceId);
  return signJson(
    {
      user_id: user.userId,
      device_id: deviceId,
      algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
      keys: { [`curve25519:${deviceId}`]: encodeBase64(randomBytes(32)), [`ed25519:${deviceId}`]: ed.publicKey },
    },
    user.userId,
    ed,
  );
}

async function uploadKeys(server: TestServer, user: TestUser, body: Record<string, unknown>): Promise<void> {
  const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/keys/upload', { token: user.accessToken, body });
  expect(res.status).toBe(200);
}

async function queryKeys(server: TestServer, user: TestUser, users: Record<string, string[]>): Promise<SyncBody> {
  const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/keys/query', { token: user.accessToken, body: { device_keys: users } });
  expect(res.status).toBe(200);
  return res.body;
}

async function twoServers(dir: string, dialect: 'sqlite' | 'postgres'): Promise<{ A: TestServer; B: TestServer }> {
  const ca = createTestCa(dir);
  const [pA, pB] = [await freePort(), await freePort()];
  const config = { federation_custom_ca_list: [ca.caPath] };
  const B = specChecked(await startHomeserver({ dialect, serverName: `127.0.0.1:${pB}`, tls: { ...issueCert(dir, 'b', ca), port: pB }, config }));
  const A = specChecked(await startHomeserver({ dialect, serverName: `localhost:${pA}`, tls: { ...issueCert(dir, 'a', ca), port: pA }, config }));
  return { A, B };
}

/** bob creates a public room on B (with `initialState`), alice on A joins it by alias; resolves when B sees her. */
async function sharedRoom(A: TestServer, B: TestServer, alice: TestUser, bob: TestUser, alias: string, initialState: unknown[] = []): Promise<string> {
  const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', {
    token: bob.accessToken,
    body: { preset: 'public_chat', room_alias_name: alias, initial_state: initialState },
  });
  expect(created.status).toBe(200);
  const roomId: string = created.body.room_id;
  const joined = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(`#${alias}:${B.serverName}`)}`, { token: alice.accessToken, body: {} });
  expect(joined).toMatchObject({ status: 200, body: { room_id: roomId } });
  await eventually(async () => {
    const res = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`, { token: bob.accessToken });
    return res.body?.joined?.[alice.userId] ? true : undefined;
  }, 'alice joined on B');
  return roomId;
}

describe.each(testDialects())('device keys and device lists across servers, on %s', (dialect) => {
  let dir: string;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let bob2: TestUser | undefined;
  let aliceSince: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-fed-e2ee-'));
    ({ A, B } = await twoServers(dir, dialect));
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
    await uploadKeys(A, alice, { device_keys: deviceKeys(alice, alice.deviceId) });
    await uploadKeys(B, bob, { device_keys: deviceKeys(bob, bob.deviceId) });
    await sharedRoom(A, B, alice, bob, 'keys');
    aliceSince = (await sync(A, alice)).next_batch;
  }, 90_000);

  afterAll(async () => {
    await Promise.all([A, B].filter(Boolean).map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("alice's /keys/query on A sees bob's device keys on B (and bob sees alice's)", async () => {
    const res = await queryKeys(A, alice, { [bob.userId]: [] });
    expect(res.failures).toEqual({});
    expect(Object.keys(res.device_keys[bob.userId])).toEqual([bob.deviceId]);
    expect(res.device_keys[bob.userId][bob.deviceId]).toMatchObject({ user_id: bob.userId, device_id: bob.deviceId, keys: expect.any(Object) });
    // Cached on A now (bob shares a room with alice): fetched once through /user/devices, never asked again.
    expect(await A.hs.services.db.knex('remote_device_lists').where({ user_id: bob.userId }).first()).toMatchObject({ stale: expect.anything() });
    await queryKeys(A, alice, { [bob.userId]: [] });
    const devicesPath = `GET /_matrix/federation/v1/user/devices/${encodeURIComponent(bob.userId)}`;
    expect(sentBy(A).filter((r) => r === devicesPath)).toHaveLength(1);
    expect(sentBy(A).filter((r) => r.includes('/user/keys/query'))).toEqual([]);

    const back = await queryKeys(B, bob, { [alice.userId]: [alice.deviceId] });
    expect(Object.keys(back.device_keys[alice.userId])).toEqual([alice.deviceId]);
  });

  it("bob's new device shows in alice's device_lists.changed and /keys/query; deleting it does too", async () => {
    bob2 = await loginDevice(B.baseUrl, bob);
    await uploadKeys(B, bob2, { device_keys: deviceKeys(bob2, bob2.deviceId) });
    let r = await syncUntil(A, alice, aliceSince, changedIncludes(bob.userId), 'bob in device_lists.changed (new device)');
    await eventually(async () => {
      const res = await queryKeys(A, alice, { [bob.userId]: [] });
      const ids = Object.keys(res.device_keys[bob.userId] ?? {}).sort();
      return ids.length === 2 ? ids : undefined;
    }, 'both of bob’s devices in /keys/query');
    const both = await queryKeys(A, alice, { [bob.userId]: [] });
    expect(Object.keys(both.device_keys[bob.userId]).sort()).toEqual([bob.deviceId, bob2.deviceId].sort());

    await deleteDevice(B.baseUrl, bob, bob2.deviceId);
    r = await syncUntil(A, alice, r.since, changedIncludes(bob.userId), 'bob in device_lists.changed (deleted device)');
    aliceSince = r.since;
    await eventually(async () => {
      const res = await queryKeys(A, alice, { [bob.userId]: [] });
      return Object.keys(res.device_keys[bob.userId] ?? {}).length === 1 ? true : undefined;
    }, 'the deleted device gone from /keys/query');
    const one = await queryKeys(A, alice, { [bob.userId]: [] });
    expect(Object.keys(one.device_keys[bob.userId])).toEqual([bob.deviceId]);
  });

  it('cross-signing keys travel as m.signing_key_update', async () => {
    const before = sentBy(A).length;
    const master = edKey();
    const self = edKey();
    const masterKey = { user_id: bob.userId, usage: ['master'], keys: { [master.keyId]: master.publicKey } };
    const selfKey = signJson({ user_id: bob.userId, usage: ['self_signing'], keys: { [self.keyId]: self.publicKey } }, bob.userId, master);
    const res = await request(B.baseUrl, 'POST', '/_matrix/client/v3/keys/device_signing/upload', {
      token: bob.accessToken,
      body: { master_key: masterKey, self_signing_key: selfKey },
    });
    expect(res.status).toBe(200);
    const r = await syncUntil(A, alice, aliceSince, changedIncludes(bob.userId), 'bob in device_lists.changed (cross-signing)');
    aliceSince = r.since;
    const q = await eventually(async () => {
      const body = await queryKeys(A, alice, { [bob.userId]: [] });
      return body.master_keys?.[bob.userId] ? body : undefined;
    }, "bob's master key on A");
    expect(q.master_keys[bob.userId].keys).toEqual(masterKey.keys);
    expect(q.self_signing_keys[bob.userId].keys).toEqual(selfKey.keys);
    // It came with the EDU, not through a resync or a query.
    expect((await A.hs.services.db.knex('remote_device_lists').where({ user_id: bob.userId }).first()).master_key).toContain(master.publicKey);
    expect(sentBy(A).slice(before).filter((r) => r.includes('/user/'))).toEqual([]);
  });

  it('an update that does not follow the last one makes A resync through /user/devices', async () => {
    // A loses track: it believes it holds an older stream position than it does.
    await A.hs.services.db.knex('remote_device_lists').where({ user_id: bob.userId }).update({ stream_id: -5 });
    const before = sentBy(A).length;
    const rename = await request(B.baseUrl, 'PUT', `/_matrix/client/v3/devices/${encodeURIComponent(bob.deviceId)}`, {
      token: bob.accessToken,
      body: { display_name: 'Bob’s laptop' },
    });
    expect(rename.status).toBe(200);
    await eventually(async () => {
      const res = await queryKeys(A, alice, { [bob.userId]: [] });
      return res.device_keys[bob.userId]?.[bob.deviceId]?.unsigned?.device_display_name === 'Bob’s laptop' ? true : undefined;
    }, 'the renamed device on A');
    const head = await A.hs.services.db.knex('remote_device_lists').where({ user_id: bob.userId }).first();
    expect(Number(head.stream_id)).toBeGreaterThan(0);
    expect(sentBy(A).slice(before)).toContain(`GET /_matrix/federation/v1/user/devices/${encodeURIComponent(bob.userId)}`);
  });

  it("alice claims bob's one-time keys through B, oldest first, then the fallback key", async () => {
    const otk = (n: number) => ({ key: encodeBase64(randomBytes(32)), signatures: { [bob.userId]: { [`ed25519:${bob.deviceId}`]: `sig${n}` } } });
    await uploadKeys(B, bob, {
      one_time_keys: { 'signed_curve25519:BBB': otk(2), 'signed_curve25519:AAA': otk(1) },
      fallback_keys: { 'signed_curve25519:FFF': { ...otk(3), fallback: true } },
    });
    const claimed: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await request(A.baseUrl, 'POST', '/_matrix/client/v3/keys/claim', {
        token: alice.accessToken,
        body: { one_time_keys: { [bob.userId]: { [bob.deviceId]: 'signed_curve25519' } } },
      });
      expect(res.status).toBe(200);
      expect(res.body.failures).toEqual({});
      claimed.push(...Object.keys(res.body.one_time_keys[bob.userId][bob.deviceId]));
    }
    // Upload order, not key id order (spec v1.13); the fallback key once they are gone.
    expect(claimed).toEqual(['signed_curve25519:BBB', 'signed_curve25519:AAA', 'signed_curve25519:FFF']);
  });

  it('an unreachable server is reported in failures; the serving endpoints answer for local users only', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    const res = await queryKeys(A, alice, { [`@nobody:${dead}`]: [], [bob.userId]: [] });
    expect(Object.keys(res.failures)).toEqual([dead]);
    expect(Object.keys(res.device_keys[bob.userId])).toEqual([bob.deviceId]);
    const claim = await request(A.baseUrl, 'POST', '/_matrix/client/v3/keys/claim', {
      token: alice.accessToken,
      body: { one_time_keys: { [`@nobody:${dead}`]: { X: 'signed_curve25519' } } },
    });
    expect(claim.body).toEqual({ one_time_keys: {}, failures: { [dead]: expect.any(Object) } });

    const client = A.hs.services.federation.client;
    await expect(client.get(B.serverName, `/_matrix/federation/v1/user/devices/${encodeURIComponent(alice.userId)}`)).rejects.toMatchObject({ remoteStatus: 400 });
    const devices = await client.get<{ user_id: string; stream_id: number; devices: Array<{ device_id: string }>; master_key?: unknown }>(
      B.serverName,
      `/_matrix/federation/v1/user/devices/${encodeURIComponent(bob.userId)}`,
    );
    expect(devices).toMatchObject({ user_id: bob.userId, stream_id: expect.any(Number), master_key: expect.any(Object), self_signing_key: expect.any(Object) });
    expect(devices.devices.map((d) => d.device_id)).toEqual([bob.deviceId]);
    // B answers a query about someone else's users with nothing.
    const q = await client.post<{ device_keys: Record<string, unknown> }>(B.serverName, '/_matrix/federation/v1/user/keys/query', { device_keys: { [alice.userId]: [] } });
    expect(q.device_keys).toEqual({});
  });

  it('once nobody on A shares a room with bob, his list is forgotten and asked of B directly', async () => {
    const roomId = (await request(A.baseUrl, 'GET', '/_matrix/client/v3/joined_rooms', { token: alice.accessToken })).body.joined_rooms[0];
    expect((await request(A.baseUrl, 'POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, { token: alice.accessToken, body: {} })).status).toBe(200);
    await eventually(async () => ((await A.hs.services.db.knex('remote_device_lists').where({ user_id: bob.userId }).first()) ? undefined : true), 'bob forgotten on A');
    const before = sentBy(A).length;
    const res = await queryKeys(A, alice, { [bob.userId]: [] });
    expect(Object.keys(res.device_keys[bob.userId])).toEqual([bob.deviceId]);
    expect(res.master_keys[bob.userId]).toBeDefined();
    expect(sentBy(A).slice(before)).toEqual(['POST /_matrix/federation/v1/user/keys/query']);
  });
});

describe.each(testDialects())('an encrypted room across servers with Rust crypto clients, on %s', (dialect) => {
  let dir: string;
  let A: TestServer, B: TestServer;
  const clients: MatrixClient[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-fed-e2ee-room-'));
    ({ A, B } = await twoServers(dir, dialect));
  }, 60_000);

  afterAll(async () => {
    await stopClients(clients);
    await Promise.all([A, B].filter(Boolean).map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('alice on A and bob on B exchange messages both ways and each decrypts the other’s', async () => {
    const alice = await registerUser(A.baseUrl, 'alice');
    const bob = await registerUser(B.baseUrl, 'bob');
    const bobClient = await startCryptoClient(B.baseUrl, bob);
    clients.push(bobClient);
    const aliceClient = await startCryptoClient(A.baseUrl, alice);
    clients.push(aliceClient);
    const roomId = await sharedRoom(A, B, alice, bob, 'secret', [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }]);
    await waitForRoom(aliceClient, roomId, [alice.userId, bob.userId]);
    await waitForRoom(bobClient, roomId, [alice.userId, bob.userId]);
    await waitForDevices(aliceClient, bob.userId, [bob.deviceId]);
    await waitForDevices(bobClient, alice.userId, [alice.deviceId]);

    await sendText(aliceClient, roomId, 'hello bob, from A');
    await waitForDecrypted(bobClient, roomId, 'hello bob, from A', 20_000);
    await sendText(bobClient, roomId, 'hello alice, from B');
    await waitForDecrypted(aliceClient, roomId, 'hello alice, from B', 20_000);

    // A second device of bob joins in: alice's client learns of it through device_lists and encrypts for it.
    const bobPhone = await loginDevice(B.baseUrl, bob);
    const phoneClient = await startCryptoClient(B.baseUrl, bobPhone);
    clients.push(phoneClient);
    await waitForDevices(aliceClient, bob.userId, [bob.deviceId, bobPhone.deviceId]);
    await sendText(aliceClient, roomId, 'for both of your devices');
    await waitForDecrypted(phoneClient, roomId, 'for both of your devices', 20_000);
    await waitForDecrypted(bobClient, roomId, 'for both of your devices', 20_000);

    expect(specViolations).toEqual([]);
  });
});
