import type { MatrixClient } from 'matrix-js-sdk';
import { RustBackupManager } from 'matrix-js-sdk/lib/rust-crypto/backup.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createEncryptedRoom,
  deleteDevice,
  disconnect,
  joinEncryptedRoom,
  loginDevice,
  reconnect,
  sendText,
  startCryptoClient,
  stopClients,
  undecryptable,
  until,
  waitForDecrypted,
  waitForDevices,
  waitForRoom,
} from '../helpers/crypto.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// End-to-end encrypted messaging through Skjól with matrix-js-sdk and its Rust crypto: the server only
// relays ciphertext, device keys and to-device room keys, and every client decrypts what the others send.

describe.each(testDialects())('end-to-end encrypted messaging with matrix-js-sdk Rust crypto on %s', (dialect) => {
  let server: TestServer;
  const clients: MatrixClient[] = [];
  // A static the SDK reads each time a backup upload loop starts (declared readonly).
  const backupLoop = RustBackupManager as unknown as { maxBackupLoopStartDelayMillis: number };
  const savedDelay = backupLoop.maxBackupLoopStartDelayMillis;

  const start = async (user: TestUser) => {
    const client = await startCryptoClient(server.baseUrl, user);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    // The SDK waits up to 10 s before each backup upload loop so devices do not stampede; not in a test.
    backupLoop.maxBackupLoopStartDelayMillis = 0;
    server = await startHomeserver({ dialect });
  });
  afterAll(async () => {
    backupLoop.maxBackupLoopStartDelayMillis = savedDelay;
    stopClients(clients);
    await server?.close();
  });

  it('two users exchange messages in an encrypted room and each decrypts the other', async () => {
    const alice = await registerUser(server.baseUrl, 'alice1');
    const bob = await registerUser(server.baseUrl, 'bob1');
    const a = await start(alice);
    const b = await start(bob);

    const roomId = await createEncryptedRoom(a, [bob.userId]);
    await joinEncryptedRoom(b, roomId);
    await waitForRoom(a, roomId, [alice.userId, bob.userId]);

    await sendText(a, roomId, 'hello bob, this is secret');
    const atBob = await waitForDecrypted(b, roomId, 'hello bob, this is secret');
    expect(atBob.getSender()).toBe(alice.userId);
    expect(atBob.getWireType()).toBe('m.room.encrypted');

    await sendText(b, roomId, 'hello alice, secret too');
    const atAlice = await waitForDecrypted(a, roomId, 'hello alice, secret too');
    expect(atAlice.getSender()).toBe(bob.userId);

    // What the server holds is ciphertext only.
    const stored = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(atBob.getId()!)}`, {
      token: bob.accessToken,
    });
    expect(stored.body.type).toBe('m.room.encrypted');
    expect(stored.body.content.algorithm).toBe('m.megolm.v1.aes-sha2');
    expect(JSON.stringify(stored.body)).not.toContain('secret');
  });
});
