import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { MatrixClient } from 'matrix-js-sdk';
import { EventShieldColour } from 'matrix-js-sdk/lib/crypto-api/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeCrypto, deleteDatabases, exportDatabases, installIndexedDb, restoreDatabases, snapshotDatabaseNames, type CryptoLogger, type CryptoStateStore } from '../../src/bridge/crypto/index.js';
import { HomeserverApi, seg } from '../../src/bridge/matrix/homeserverApi.js';
import { startHomeserver, type TestServer } from '../helpers/homeserver.js';
import { createEncryptedRoom, startCryptoClient, stopClients, undecryptable, until, waitForDecrypted, waitForRoom } from '../helpers/crypto.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// The bridge's end-to-end encryption layer against a real Skjól and a real matrix-js-sdk client with Rust
// crypto. The bridge reaches the homeserver only through the application service API: its ghost gets its
// own device (MSC4190), keys and to-device messages flow through transactions (MSC2409, MSC3202).

type Json = Record<string, any>;

const AS_TOKEN = 'as-token-bridge-crypto-test';
const HS_TOKEN = 'hs-token-bridge-crypto-test';
const PASSPHRASE = 'correct horse battery staple for the crypto store';
const GHOST = '@irc_net_bob:localhost';

/** What the bridge's database would do, in memory. */
class MemoryCryptoStateStore implements CryptoStateStore {
  readonly snapshots = new Map<string, Uint8Array>();
  readonly devices = new Map<string, string>();
  readonly sizes: number[] = [];

  async loadSnapshot(storeName: string): Promise<Uint8Array | undefined> {
    const s = this.snapshots.get(storeName);
    return s && new Uint8Array(s);
  }

  async saveSnapshot(storeName: string, data: Uint8Array): Promise<void> {
    this.snapshots.set(storeName, new Uint8Array(data));
    this.sizes.push(data.byteLength);
  }

  async deviceOf(userId: string): Promise<string | undefined> {
    return this.devices.get(userId);
  }

  async saveDevice(userId: string, deviceId: string): Promise<void> {
    this.devices.set(userId, deviceId);
  }
}

/** Every log line the crypto layer writes, to check that none carries a secret or plaintext. */
function recordingLogger(lines: string[]): CryptoLogger {
  const log = (level: string) => (obj: Record<string, unknown>, msg: string) => lines.push(`${level} ${msg} ${JSON.stringify(obj)}`);
  return { info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') };
}

/**
 * The bridge's transaction endpoint, reduced to crypto: every transaction goes to the current BridgeCrypto
 * (awaited, so a restart can hold transactions back), its events are kept for the test to read.
 */
class TransactionReceiver {
  readonly events: Json[] = [];
  crypto: Promise<BridgeCrypto> | undefined;
  private readonly seen = new Set<string>();
  private server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void this.handle(req.method ?? '', req.url ?? '', req.headers.authorization, Buffer.concat(chunks).toString('utf8')).then(([status, body]) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        });
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private async handle(method: string, url: string, auth: string | undefined, text: string): Promise<[number, Json]> {
    const m = /^\/_matrix\/app\/v1\/transactions\/([^/?]+)/.exec(url);
    if (method !== 'PUT' || !m) return [404, { errcode: 'M_UNRECOGNIZED', error: 'not here' }];
    if (auth !== `Bearer ${HS_TOKEN}`) return [403, { errcode: 'M_FORBIDDEN', error: 'bad token' }];
    const txnId = decodeURIComponent(m[1]!);
    if (this.seen.has(txnId)) return [200, {}];
    const body = JSON.parse(text) as Json;
    try {
      const crypto = await this.crypto;
      await crypto?.receiveTransaction(body);
    } catch {
      return [500, { errcode: 'M_UNKNOWN', error: 'crypto failed' }];
    }
    this.seen.add(txnId);
    this.events.push(...((body.events as Json[] | undefined) ?? []));
    return [200, {}];
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** The Megolm message index of an m.room.encrypted content (version byte, then protobuf field 1). */
function megolmIndex(content: Json): number {
  const bytes = Buffer.from(String(content.ciphertext), 'base64');
  if (bytes[0] !== 3 || bytes[1] !== 0x08) throw new Error('not a Megolm v1 message');
  let index = 0;
  for (let i = 2, shift = 0; i < bytes.length; i++, shift += 7) {
    index += (bytes[i]! & 0x7f) * 2 ** shift;
    if (!(bytes[i]! & 0x80)) break;
  }
  return index;
}

describe('bridge end-to-end encryption (per-user devices through the AS API)', () => {
  let dir: string;
  let server: TestServer;
  let receiver: TransactionReceiver;
  let api: HomeserverApi;
  let alice: TestUser;
  let aliceClient: MatrixClient;
  let crypto: BridgeCrypto;
  let roomId: string;
  let ghostDevice: string;
  let firstGhostContent: Json;
  const store = new MemoryCryptoStateStore();
  const logLines: string[] = [];

  const newCrypto = () => new BridgeCrypto({ api, store, passphrase: PASSPHRASE, logger: recordingLogger(logLines), deviceDisplayName: 'IRC bridge' });

  /** Encrypts as the ghost and sends the result as the ghost's device. */
  const ghostSays = async (c: BridgeCrypto, body: string): Promise<Json> => {
    const content = await c.encryptEvent(GHOST, roomId, 'm.room.message', { msgtype: 'm.text', body }, [alice.userId, GHOST], { historyVisibility: 'shared' });
    const txn = `t${Date.now()}${Math.random().toString(36).slice(2)}`;
    await api.request('PUT', `/_matrix/client/v3/rooms/${seg(roomId)}/send/m.room.encrypted/${txn}`, { userId: GHOST, deviceId: ghostDevice, body: content });
    return content;
  };

  /** Alice sends; the ghost's machine decrypts the event the homeserver pushed to the bridge. */
  const ghostDecryptsAlice = async (c: BridgeCrypto, body: string) => {
    const { event_id: eventId } = await aliceClient.sendTextMessage(roomId, body);
    const event = await until('the event in a transaction', () => receiver.events.find((e) => e.event_id === eventId));
    expect(event.type).toBe('m.room.encrypted');
    expect(JSON.stringify(event)).not.toContain(body);
    // The room key travels as a to-device message in a transaction of its own; retry until it is there.
    return until(`the ghost to decrypt "${body}"`, () => c.decryptEvent(event, [GHOST]));
  };

  beforeAll(async () => {
    receiver = new TransactionReceiver();
    await receiver.start();
    dir = mkdtempSync(join(tmpdir(), 'skjol-bridge-crypto-'));
    const file = join(dir, 'registration.yaml');
    writeFileSync(
      file,
      [
        'id: irc-bridge',
        `url: http://127.0.0.1:${receiver.port}`,
        `as_token: ${AS_TOKEN}`,
        `hs_token: ${HS_TOKEN}`,
        'sender_localpart: ircbot',
        'namespaces:',
        '  users:',
        '    - exclusive: true',
        "      regex: '@irc_.*:localhost'",
        '  aliases: []',
        '  rooms: []',
        'rate_limited: false',
        'de.sorunome.msc2409.push_ephemeral: true',
        'org.matrix.msc3202: true',
        'io.element.msc4190: true',
        '',
      ].join('\n'),
    );
    server = await startHomeserver({ config: { app_service_config_files: [file] } });
    api = new HomeserverApi({ url: server.baseUrl, asToken: AS_TOKEN });
    crypto = newCrypto();
    await crypto.start();
    receiver.crypto = Promise.resolve(crypto);
    alice = await registerUser(server.baseUrl, 'alice');
    aliceClient = await startCryptoClient(server.baseUrl, alice);
  });

  afterAll(async () => {
    await stopClients(aliceClient ? [aliceClient] : []);
    await crypto?.close().catch(() => undefined);
    await server?.close();
    await receiver?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('gives the ghost its own device, once, even when asked concurrently', async () => {
    const [a, b] = await Promise.all([crypto.ensureDevice(GHOST), crypto.ensureDevice(GHOST)]);
    expect(a).toBe(b);
    ghostDevice = a;
    expect(crypto.hasDevice(GHOST)).toBe(true);
    expect(store.devices.get(GHOST)).toBe(ghostDevice);
    const devices = await api.request<{ devices: Json[] }>('GET', '/_matrix/client/v3/devices', { userId: GHOST });
    expect(devices.devices.map((d) => d.device_id)).toEqual([ghostDevice]);
    // Its keys are on the server for others to see.
    const keys = await api.request<Json>('POST', '/_matrix/client/v3/keys/query', { body: { device_keys: { [GHOST]: [] } } });
    expect(Object.keys(keys.device_keys[GHOST])).toEqual([ghostDevice]);
    expect(await crypto.ensureDevice(GHOST)).toBe(ghostDevice);
  });

  it('a Rust-crypto client decrypts what the ghost encrypted', async () => {
    roomId = await createEncryptedRoom(aliceClient, [GHOST]);
    await api.request('POST', `/_matrix/client/v3/join/${seg(roomId)}`, { userId: GHOST, body: {} });
    await waitForRoom(aliceClient, roomId, [alice.userId, GHOST]);
    firstGhostContent = await ghostSays(crypto, 'hello from IRC');
    expect(firstGhostContent).toMatchObject({ algorithm: 'm.megolm.v1.aes-sha2', device_id: ghostDevice });
    const ev = await waitForDecrypted(aliceClient, roomId, 'hello from IRC');
    expect(ev.getSender()).toBe(GHOST);
    const info = await aliceClient.getCrypto()!.getEncryptionInfoForEvent(ev);
    // The ghost's device is signed by its own cross-signing identity: no red "not verified by its owner"
    // shield (which Element shows for unsigned devices, and which "exclude insecure devices" refuses).
    expect(info).toMatchObject({ shieldColour: EventShieldColour.NONE });
    expect(undecryptable(aliceClient, roomId)).toHaveLength(0);
  });

  it("the ghost's machine decrypts the Matrix user's message", async () => {
    const clear = await ghostDecryptsAlice(crypto, 'hello from Matrix');
    expect(clear).toEqual({ type: 'm.room.message', content: expect.objectContaining({ msgtype: 'm.text', body: 'hello from Matrix' }) });
    // Without the key (another bridge user's machine, which is not in the room) nothing is decrypted.
    const event = receiver.events.find((e) => e.type === 'm.room.encrypted' && e.sender === alice.userId)!;
    expect(await crypto.decryptEvent(event, ['@irc_net_nobody:localhost'])).toBeUndefined();
  });

  it('keeps the device and its sessions across a restart, through the snapshot alone', async () => {
    let resume!: (c: BridgeCrypto) => void;
    receiver.crypto = new Promise((r) => (resume = r)); // transactions wait for the new instance
    await crypto.close();
    // Empty the in-memory IndexedDB: only the CryptoStateStore's snapshot may carry the state over.
    const idb = (globalThis as unknown as { indexedDB: { databases(): Promise<Array<{ name: string }>>; deleteDatabase(n: string): { onsuccess: unknown; onerror: unknown } } }).indexedDB;
    for (const { name } of await idb.databases()) {
      await new Promise<void>((resolve, reject) => {
        const req = idb.deleteDatabase(name);
        req.onsuccess = () => resolve();
        req.onerror = () => reject(new Error(`cannot delete ${name}`));
      });
    }
    expect(await idb.databases()).toEqual([]);
    expect(store.snapshots.size).toBe(1);

    crypto = newCrypto();
    await crypto.start();
    expect(crypto.hasDevice(GHOST)).toBe(false);
    expect(await crypto.ensureDevice(GHOST)).toBe(ghostDevice);
    resume(crypto);

    // Alice's outbound session is the one shared before the restart: the restored inbound session opens it.
    const clear = await ghostDecryptsAlice(crypto, 'after restart from Matrix');
    expect(clear?.content.body).toBe('after restart from Matrix');

    // The ghost's outbound session continues where it was: same session, a later message index.
    const content = await ghostSays(crypto, 'after restart from IRC');
    expect(content.session_id).toBe(firstGhostContent.session_id);
    expect(megolmIndex(content)).toBeGreaterThan(megolmIndex(firstGhostContent));
    await waitForDecrypted(aliceClient, roomId, 'after restart from IRC');
    expect(undecryptable(aliceClient, roomId)).toHaveLength(0);

    const devices = await api.request<{ devices: Json[] }>('GET', '/_matrix/client/v3/devices', { userId: GHOST });
    expect(devices.devices.map((d) => d.device_id)).toEqual([ghostDevice]);
  });

  it('never logs plaintext, the passphrase or tokens', () => {
    expect(logLines.length).toBeGreaterThan(0);
    const all = logLines.join('\n');
    for (const secret of ['hello from', 'after restart from', PASSPHRASE, AS_TOKEN, HS_TOKEN]) expect(all).not.toContain(secret);
    // For the report: snapshot sizes seen.
    console.info(`crypto snapshots: ${store.sizes.length} saves, ${Math.min(...store.sizes)}–${Math.max(...store.sizes)} bytes`);
  });
});

describe('IndexedDB snapshots', () => {
  // The global (fake) IndexedDB, untyped: the project compiles without the DOM library.
  const idb = (): any => (globalThis as any).indexedDB;
  const req = <T>(r: any): Promise<T> =>
    new Promise((resolve, reject) => {
      r.onsuccess = () => resolve(r.result as T);
      r.onerror = () => reject(r.error);
    });
  const txDone = (tx: any): Promise<void> =>
    new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  const openDb = (name: string, version: number, upgrade: (db: any) => void): Promise<any> => {
    const r = idb().open(name, version);
    r.onupgradeneeded = () => upgrade(r.result);
    return req(r);
  };
  const readAll = async (name: string, store: string): Promise<{ keys: unknown[]; values: unknown[] }> => {
    const db = await req<any>(idb().open(name));
    const tx = db.transaction([store], 'readonly');
    const [keys, values] = await Promise.all([req<unknown[]>(tx.objectStore(store).getAllKeys()), req<unknown[]>(tx.objectStore(store).getAll())]);
    db.close();
    return { keys, values };
  };

  it('round-trips schema and records of the databases under a prefix, and leaves others alone', async () => {
    installIndexedDb();
    const a = await openDb('snap-test::a', 3, (db) => {
      const inline = db.createObjectStore('inline', { keyPath: 'id' });
      inline.createIndex('by_tags', 'tags', { unique: false, multiEntry: true });
      db.createObjectStore('counter', { keyPath: null, autoIncrement: true });
      db.createObjectStore('outofline');
    });
    const tx = a.transaction(['inline', 'counter', 'outofline'], 'readwrite');
    tx.objectStore('inline').put({ id: 'x', tags: ['one', 'two'], bytes: new Uint8Array([1, 2, 3]) });
    tx.objectStore('inline').put({ id: 'y', tags: ['two'], map: new Map([['k', 1]]) });
    tx.objectStore('counter').add('first');
    tx.objectStore('counter').add('second');
    tx.objectStore('outofline').put(new Uint8Array([9, 9]).buffer, ['compound', 7]);
    await txDone(tx);
    a.close();
    (await openDb('snap-test::b', 1, (db) => db.createObjectStore('empty'))).close();
    (await openDb('other-db', 1, (db) => db.createObjectStore('kept'))).close();

    const data = await exportDatabases('snap-test::');
    expect(snapshotDatabaseNames(data)).toEqual(['snap-test::a', 'snap-test::b']);
    await deleteDatabases('snap-test::');
    const names = async () => ((await idb().databases()) as Array<{ name: string }>).map((d) => d.name).sort();
    expect(await names()).toEqual(['other-db']);

    await restoreDatabases(data);
    expect(await names()).toEqual(['other-db', 'snap-test::a', 'snap-test::b']);
    const inline = await readAll('snap-test::a', 'inline');
    expect(inline.keys).toEqual(['x', 'y']);
    expect(inline.values).toEqual([
      { id: 'x', tags: ['one', 'two'], bytes: new Uint8Array([1, 2, 3]) },
      { id: 'y', tags: ['two'], map: new Map([['k', 1]]) },
    ]);
    expect(await readAll('snap-test::a', 'outofline')).toEqual({ keys: [['compound', 7]], values: [new Uint8Array([9, 9]).buffer] });

    const db = await req<any>(idb().open('snap-test::a'));
    expect(db.version).toBe(3);
    const tx2 = db.transaction(['inline', 'counter'], 'readwrite');
    // Indexes came back, and the key generator continues after the restored keys.
    const tagged = req<unknown[]>(tx2.objectStore('inline').index('by_tags').getAllKeys('two'));
    const next = req<number>(tx2.objectStore('counter').add('third'));
    expect(await tagged).toEqual(['x', 'y']);
    expect(await next).toBe(3);
    await txDone(tx2);
    db.close();
    await deleteDatabases('snap-test::');
    await deleteDatabases('other-db');
  });
});
