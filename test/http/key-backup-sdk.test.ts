import * as RustSdk from '@matrix-org/matrix-sdk-crypto-wasm';
import { MatrixEvent, createClient, type MatrixClient } from 'matrix-js-sdk';
import type { Logger } from 'matrix-js-sdk/lib/logger.js';
import { RustBackupManager } from 'matrix-js-sdk/lib/rust-crypto/backup.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { loginDevice, registerUser, type TestUser } from '../helpers/users.js';

// End to end with matrix-js-sdk's Rust crypto: one device of a user creates a backup and uploads a megolm
// key to it, another device of the same user restores the key from the server and decrypts with it.

/** The crypto stack logs through the client's logger, below the level test/setup.ts sets on the global one. */
const quiet: Logger = {
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  getChild: () => quiet,
};

async function cryptoClient(baseUrl: string, user: TestUser): Promise<MatrixClient> {
  const client = createClient({
    baseUrl,
    userId: user.userId,
    accessToken: user.accessToken,
    deviceId: user.deviceId,
    ...(process.env.SKJOL_TEST_SDK_LOG === 'debug' ? {} : { logger: quiet }),
  });
  await client.initRustCrypto({ useIndexedDB: false });
  return client;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each(testDialects())('key backup with matrix-js-sdk Rust crypto on %s', (dialect) => {
  let server: TestServer;
  const clients: MatrixClient[] = [];
  const machines: RustSdk.OlmMachine[] = [];
  // A static the SDK reads each time an upload loop starts (declared readonly).
  const backupLoop = RustBackupManager as unknown as { maxBackupLoopStartDelayMillis: number };
  const savedDelay = backupLoop.maxBackupLoopStartDelayMillis;

  beforeAll(async () => {
    // The SDK waits up to 10 s before each upload loop so devices do not stampede; not in a test.
    backupLoop.maxBackupLoopStartDelayMillis = 0;
    await RustSdk.initAsync();
    server = await startHomeserver({ dialect });
  });
  afterAll(async () => {
    backupLoop.maxBackupLoopStartDelayMillis = savedDelay;
    for (const c of clients) c.stopClient();
    for (const m of machines) m.close();
    await server?.close();
  });

  it('backs up a room key from one device and restores it on another', async () => {
    const first = await registerUser(server.baseUrl, 'erin');
    const second = await loginDevice(server.baseUrl, first);
    const roomId = '!backup:localhost';

    // A megolm session from someone else's device, with one encrypted message, as a room would give it.
    const sender = await RustSdk.OlmMachine.initialize(new RustSdk.UserId('@frank:localhost'), new RustSdk.DeviceId('FRANKDEV'));
    machines.push(sender);
    await sender.shareRoomKey(new RustSdk.RoomId(roomId), [], new RustSdk.EncryptionSettings());
    const ciphertext = JSON.parse(
      await sender.encryptRoomEvent(new RustSdk.RoomId(roomId), 'm.room.message', JSON.stringify({ msgtype: 'm.text', body: 'from the backup' })),
    ) as { session_id: string };
    const exported = await sender.exportRoomKeys(() => true);

    // Device 1: a fresh backup (resetKeyBackup deletes any old one and POSTs a new signed version)…
    const c1 = await cryptoClient(server.baseUrl, first);
    clients.push(c1);
    await c1.getCrypto()!.resetKeyBackup();
    const info = await c1.getCrypto()!.getKeyBackupInfo();
    expect(info?.version).toBe('1');
    expect(info?.algorithm).toBe('m.megolm_backup.v1.curve25519-aes-sha2');
    expect(await c1.getCrypto()!.getActiveSessionBackupVersion()).toBe('1');
    const server1 = await request(server.baseUrl, 'GET', '/_matrix/client/v3/room_keys/version', { token: first.accessToken });
    expect(server1.body).toMatchObject({ version: '1', count: 0 });
    expect(server1.body.auth_data.signatures[first.userId][`ed25519:${first.deviceId}`]).toEqual(expect.any(String));

    // …imports the session, which the SDK's backup loop uploads (PUT /room_keys/keys?version=1).
    await c1.getCrypto()!.importRoomKeysAsJson(exported);
    const uploaded = await until('the key to reach the backup', async () => {
      const res = await request(server.baseUrl, 'GET', '/_matrix/client/v3/room_keys/version/1', { token: first.accessToken });
      return res.body.count === 1 ? res.body : undefined;
    });
    expect(uploaded.etag).not.toBe(server1.body.etag);
    const stored = await request(
      server.baseUrl,
      'GET',
      `/_matrix/client/v3/room_keys/keys/${encodeURIComponent(roomId)}/${encodeURIComponent(ciphertext.session_id)}?version=1`,
      { token: first.accessToken },
    );
    expect(stored.status).toBe(200);
    expect(Object.keys(stored.body.session_data).sort()).toEqual(['ciphertext', 'ephemeral', 'mac']);

    // Device 2 gets the backup decryption key (here handed over directly, as secret sharing would) and restores.
    const backupKey = await c1.getCrypto()!.getSessionBackupPrivateKey();
    expect(backupKey).not.toBeNull();
    const c2 = await cryptoClient(server.baseUrl, second);
    clients.push(c2);
    await c2.getCrypto()!.storeSessionBackupPrivateKey(backupKey!, '1');
    const restored = await c2.getCrypto()!.restoreKeyBackup();
    expect(restored).toMatchObject({ total: 1, imported: 1 });

    const event = new MatrixEvent({
      type: 'm.room.encrypted',
      room_id: roomId,
      sender: '@frank:localhost',
      event_id: '$encrypted',
      origin_server_ts: Date.now(),
      content: ciphertext as unknown as Record<string, unknown>,
    });
    await c2.decryptEventIfNeeded(event);
    expect(event.getType()).toBe('m.room.message');
    expect(event.getContent().body).toBe('from the backup');

    // Device 1 deletes the backup through the SDK; the server forgets it and its keys.
    await c1.getCrypto()!.deleteKeyBackupVersion('1');
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/v3/room_keys/version', { token: first.accessToken })).status).toBe(404);
    expect(await c1.getCrypto()!.getActiveSessionBackupVersion()).toBeNull();
  });
});
