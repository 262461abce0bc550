import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createEncryptedRoom,
  disconnect,
  joinEncryptedRoom,
  reconnect,
  sendText,
  startCryptoClient,
  specViolations,
  stopClients,
  until,
  waitForDecrypted,
  waitForRoom,
} from '../helpers/crypto.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// Encrypted messaging when things go wrong: a device whose one-time keys are all gone, and a server restart
// while a room key waits in a to-device queue. Clients use matrix-js-sdk with its Rust crypto.
//
// A client "goes offline" through `disconnect` (helpers/crypto.ts), not `stopClient()`: stopping closes the
// Rust OlmMachine, and with the in-memory crypto store (no IndexedDB in Node) its keys would be gone.

describe.each(testDialects())('end-to-end encryption through exhausted keys and restarts on %s', (dialect) => {
  let server: TestServer;
  const clients: MatrixClient[] = [];
  const start = async (user: TestUser) => {
    const client = await startCryptoClient(server.baseUrl, user);
    clients.push(client);
    return client;
  };
  const db = () => server.hs.services.db.knex;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
  });
  afterAll(async () => {
    await stopClients(clients);
    await server?.close();
  });
  afterEach(() => {
    expect(specViolations).toEqual([]);
  });

  it('when all one-time keys are claimed, a new Olm session is made with the fallback key and messages still decrypt', async () => {
    const fay = await registerUser(server.baseUrl, 'fay');
    const gus = await registerUser(server.baseUrl, 'gus');
    const hal = await registerUser(server.baseUrl, 'hal');
    const f = await start(fay);
    const g = await start(gus);
    const gusKeys = () => db()('one_time_keys').where({ user_id: gus.userId, device_id: gus.deviceId });
    await until("gus's one-time and fallback keys to be uploaded", async () => {
      const otks = await gusKeys().count({ n: '*' }).first();
      const fallback = await db()('fallback_keys').where({ user_id: gus.userId, device_id: gus.deviceId, used: false }).first();
      return Number(otks?.n) > 0 && fallback ? true : undefined;
    });

    const roomId = await createEncryptedRoom(f, [gus.userId]);
    await joinEncryptedRoom(g, roomId);
    await waitForRoom(f, roomId, [fay.userId, gus.userId]);

    // Gus goes offline (so his client cannot top its keys up), and hal claims every one-time key he has.
    await disconnect(g);
    const claim = async () => {
      const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/keys/claim', {
        token: hal.accessToken,
        body: { one_time_keys: { [gus.userId]: { [gus.deviceId]: 'signed_curve25519' } } },
      });
      expect(res.status).toBe(200);
      const [keyId, key] = Object.entries(res.body.one_time_keys[gus.userId][gus.deviceId] as Record<string, { fallback?: boolean }>)[0]!;
      return { keyId, fallback: key.fallback === true };
    };
    const uploaded = Number((await gusKeys().count({ n: '*' }).first())?.n);
    let claimed = 0;
    let last = await claim();
    while (!last.fallback) {
      claimed++;
      expect(claimed).toBeLessThanOrEqual(uploaded);
      last = await claim();
    }
    expect(claimed).toBe(uploaded);
    expect((await claim()).keyId).toBe(last.keyId); // the fallback key is handed out again, not used up

    // Fay has never talked to gus: to share her room key she must claim a key, and only the fallback is left.
    await sendText(f, roomId, 'sent through the fallback key');
    expect(Number((await gusKeys().count({ n: '*' }).first())?.n)).toBe(0);
    const queued = await db()('to_device_messages').where({ user_id: gus.userId, device_id: gus.deviceId, sender: fay.userId }).select('type', 'content');
    expect(queued.map((m: { type: string }) => m.type)).toEqual(['m.room.encrypted']);
    const olm = JSON.parse(queued[0].content) as { algorithm: string; ciphertext: Record<string, { type: number }> };
    expect(olm.algorithm).toBe('m.olm.v1.curve25519-aes-sha2');
    expect(Object.values(olm.ciphertext)[0]!.type).toBe(0); // a pre-key message: a new Olm session

    await reconnect(g, server.baseUrl);
    await waitForDecrypted(g, roomId, 'sent through the fallback key');
    // Back online, gus's client learns from /sync that its one-time keys are gone and uploads new ones; the
    // server keeps reporting the fallback key as used (the SDK replaces it on its own schedule).
    expect(await server.hs.services.e2ee.deviceKeys.unusedFallbackKeyTypes(gus.userId, gus.deviceId)).toEqual([]);
    await until('gus to upload new one-time keys', async () => (Number((await gusKeys().count({ n: '*' }).first())?.n) > 0 ? true : undefined));
  });

  it('a room key waiting in the to-device queue survives a server restart', async () => {
    const ivy = await registerUser(server.baseUrl, 'ivy');
    const jon = await registerUser(server.baseUrl, 'jon');
    const i = await start(ivy);
    const j = await start(jon);
    const roomId = await createEncryptedRoom(i, [jon.userId]);
    await joinEncryptedRoom(j, roomId);
    await waitForRoom(i, roomId, [ivy.userId, jon.userId]);

    // Jon is offline when ivy sends: the megolm key for him waits in the server's to-device queue.
    await disconnect(j);
    await sendText(i, roomId, 'kept across the restart');
    const waiting = await db()('to_device_messages').where({ user_id: jon.userId, device_id: jon.deviceId, sender: ivy.userId }).select('type');
    expect(waiting.map((m: { type: string }) => m.type)).toEqual(['m.room.encrypted']);

    // Restart: the port changes, so the same client objects (with their in-memory crypto) are pointed at it.
    await disconnect(i);
    server = await server.restart();
    await reconnect(j, server.baseUrl);
    await reconnect(i, server.baseUrl);
    await waitForDecrypted(j, roomId, 'kept across the restart');

    // Both ways work after the restart.
    await sendText(j, roomId, 'and a reply after it');
    await waitForDecrypted(i, roomId, 'and a reply after it');
    await until("the delivered room key to leave the queue once jon's next sync acknowledges it", async () => {
      const left = await db()('to_device_messages').where({ user_id: jon.userId, device_id: jon.deviceId, sender: ivy.userId }).count({ n: '*' }).first();
      return Number(left?.n) === 0 ? true : undefined;
    });
  });
});
