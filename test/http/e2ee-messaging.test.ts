import type { MatrixClient } from 'matrix-js-sdk';
import { RustBackupManager } from 'matrix-js-sdk/lib/rust-crypto/backup.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createEncryptedRoom,
  deleteDevice,
  disconnect,
  joinEncryptedRoom,
  loginDevice,
  reconnect,
  sendText,
  startCryptoClient,
  specViolations,
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
    await stopClients(clients);
    await server?.close();
  });
  afterEach(() => {
    expect(specViolations).toEqual([]);
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

  it("a user's second device decrypts new messages at once, and old ones after restoring the key backup", async () => {
    const alice = await registerUser(server.baseUrl, 'alice2');
    const bob = await registerUser(server.baseUrl, 'bob2');
    const a1 = await start(alice);
    const b = await start(bob);
    const roomId = await createEncryptedRoom(a1, [bob.userId]);
    await joinEncryptedRoom(b, roomId);
    await waitForRoom(a1, roomId, [alice.userId, bob.userId]);
    await sendText(a1, roomId, 'old from alice');
    await sendText(b, roomId, 'old from bob');
    await waitForDecrypted(b, roomId, 'old from alice');
    await waitForDecrypted(a1, roomId, 'old from bob');

    // Alice logs in on a second device later; both senders learn of it through device_lists.changed.
    const alice2 = await loginDevice(server.baseUrl, alice);
    const a2 = await start(alice2);
    await waitForRoom(a2, roomId, [alice.userId, bob.userId]);
    await waitForDevices(b, alice.userId, [alice.deviceId, alice2.deviceId]);
    await waitForDevices(a1, alice.userId, [alice.deviceId, alice2.deviceId]);
    await sendText(b, roomId, 'new from bob');
    await sendText(a1, roomId, 'new from alice');
    await waitForDecrypted(a2, roomId, 'new from bob');
    await waitForDecrypted(a2, roomId, 'new from alice');
    // The earlier messages are in the new device's timeline, but it was not there when their keys were sent.
    expect(undecryptable(a2, roomId).length).toBeGreaterThanOrEqual(2);

    // The first device starts a key backup; its upload loop sends every megolm session it holds.
    await a1.getCrypto()!.resetKeyBackup();
    const version = (await a1.getCrypto()!.getActiveSessionBackupVersion())!;
    expect(version).toEqual(expect.any(String));
    const oldSessions = ['old from alice', 'old from bob'].map((body) => {
      const event = a1.getRoom(roomId)!.getLiveTimeline().getEvents().find((e) => e.getClearContent()?.body === body)!;
      return event.getWireContent().session_id as string;
    });
    await until('the old sessions to reach the backup', async () => {
      const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/room_keys/keys?version=${version}`, { token: alice.accessToken });
      const sessions = Object.keys(res.body.rooms?.[roomId]?.sessions ?? {});
      return oldSessions.every((s) => sessions.includes(s)) ? true : undefined;
    });

    // The second device gets the backup key (as secret sharing would hand it over) and restores.
    const backupKey = (await a1.getCrypto()!.getSessionBackupPrivateKey())!;
    await a2.getCrypto()!.storeSessionBackupPrivateKey(backupKey, version);
    const restored = await a2.getCrypto()!.restoreKeyBackup();
    expect(restored.imported).toBeGreaterThanOrEqual(2);
    await waitForDecrypted(a2, roomId, 'old from alice');
    await waitForDecrypted(a2, roomId, 'old from bob');
  });

  it('a user who joins later decrypts what is sent after the join', async () => {
    const alice = await registerUser(server.baseUrl, 'alice3');
    const bob = await registerUser(server.baseUrl, 'bob3');
    const carol = await registerUser(server.baseUrl, 'carol3');
    const a = await start(alice);
    const b = await start(bob);
    const c = await start(carol);
    const roomId = await createEncryptedRoom(a, [bob.userId]);
    await joinEncryptedRoom(b, roomId);
    await waitForRoom(a, roomId, [alice.userId, bob.userId]);
    await sendText(a, roomId, 'before carol');
    await waitForDecrypted(b, roomId, 'before carol');

    await a.invite(roomId, carol.userId);
    await joinEncryptedRoom(c, roomId);
    await waitForRoom(a, roomId, [carol.userId]);
    await waitForRoom(b, roomId, [carol.userId]);
    await sendText(b, roomId, 'welcome carol, from bob');
    await sendText(a, roomId, 'welcome carol, from alice');
    await waitForDecrypted(c, roomId, 'welcome carol, from bob');
    await waitForDecrypted(c, roomId, 'welcome carol, from alice');
    await sendText(c, roomId, 'thanks, from carol');
    await waitForDecrypted(a, roomId, 'thanks, from carol');
    await waitForDecrypted(b, roomId, 'thanks, from carol');
    // Nothing sent before she joined was shared with her.
    const seen = c.getRoom(roomId)!.getLiveTimeline().getEvents().map((e) => e.getClearContent()?.body);
    expect(seen).not.toContain('before carol');

    // Once she has left, new room keys are no longer sent to her (her client is kept offline to see the queue).
    await c.leave(roomId);
    await until('bob to see carol leave', () => (b.getRoom(roomId)?.getMember(carol.userId)?.membership === 'leave' ? true : undefined));
    await disconnect(c);
    await sendText(b, roomId, 'carol is gone');
    const gone = await waitForDecrypted(a, roomId, 'carol is gone');
    const before = await waitForDecrypted(a, roomId, 'welcome carol, from bob');
    expect(gone.getWireContent().session_id).not.toBe(before.getWireContent().session_id); // a new room key…
    const toCarol = await server.hs.services.db.knex('to_device_messages').where({ user_id: carol.userId, sender: bob.userId }).select('type');
    expect(toCarol).toEqual([]); // …that carol never got
  });

  it('after a device is deleted, others stop listing it and new room keys are no longer sent to it', async () => {
    const alice = await registerUser(server.baseUrl, 'alice4');
    const bob = await registerUser(server.baseUrl, 'bob4');
    const bob2 = await loginDevice(server.baseUrl, bob);
    const a = await start(alice);
    const b1 = await start(bob);
    const b2 = await start(bob2);
    const roomId = await createEncryptedRoom(a, [bob.userId]);
    await joinEncryptedRoom(b1, roomId);
    await waitForRoom(b2, roomId, [bob.userId]);
    await waitForRoom(a, roomId, [alice.userId, bob.userId]);
    await waitForDevices(a, bob.userId, [bob.deviceId, bob2.deviceId]);
    await sendText(a, roomId, 'to both of your devices');
    await waitForDecrypted(b1, roomId, 'to both of your devices');
    await waitForDecrypted(b2, roomId, 'to both of your devices');

    b2.stopClient();
    await deleteDevice(server.baseUrl, bob, bob2.deviceId);
    await waitForDevices(a, bob.userId, [bob.deviceId], [bob2.deviceId]);

    // Bob's remaining device is offline, so what alice's next message queues for bob stays in the database.
    await disconnect(b1);
    await sendText(a, roomId, 'only for the device you kept');
    const queued: Array<{ device_id: string; type: string }> = await server.hs.services.db
      .knex('to_device_messages')
      .where({ user_id: bob.userId })
      .select('device_id', 'type');
    expect(queued.filter((m) => m.device_id === bob2.deviceId)).toEqual([]);
    // The deleted device forced a new megolm session, shared with the remaining device only.
    expect(queued).toContainEqual({ device_id: bob.deviceId, type: 'm.room.encrypted' });

    await reconnect(b1, server.baseUrl);
    await waitForDecrypted(b1, roomId, 'only for the device you kept');

    // A sender that has not heard of the deletion yet may still address the old device: nothing may be queued
    // for it, since no one will ever sync it away.
    const late = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/sendToDevice/m.room.encrypted/late-${dialect}`, {
      token: alice.accessToken,
      body: { messages: { [bob.userId]: { [bob2.deviceId]: { algorithm: 'm.olm.v1.curve25519-aes-sha2', ciphertext: {} } } } },
    });
    expect(late.status).toBe(200);
    expect(await server.hs.services.db.knex('to_device_messages').where({ user_id: bob.userId, device_id: bob2.deviceId }).select('stream_id')).toEqual([]);
  });
});
