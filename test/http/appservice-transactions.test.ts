import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

type Json = any;

interface Received {
  txnId: string;
  authorization: string | undefined;
  body: Json;
}

/** A stand-in application service: records every transaction; `status` decides the answer. */
class FakeAppservice {
  readonly received: Received[] = [];
  /** Every attempt's txnId, failed or not, in arrival order. */
  readonly attempts: string[] = [];
  /** Answers with this status while it returns a number (then records nothing as delivered). */
  failWith: (() => number | undefined) | undefined;
  private server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req).then(([status, body]) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    }));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private async handle(req: IncomingMessage): Promise<[number, Json]> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const m = /^\/_matrix\/app\/v1\/transactions\/([^/?]+)$/.exec(req.url ?? '');
    if (req.method !== 'PUT' || !m) return [404, { errcode: 'M_UNRECOGNIZED', error: 'not here' }];
    this.attempts.push(decodeURIComponent(m[1]!));
    const status = this.failWith?.();
    if (status !== undefined) return [status, { errcode: 'M_UNKNOWN', error: 'down' }];
    this.received.push({ txnId: decodeURIComponent(m[1]!), authorization: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
    return [200, {}];
  }

  /** Successful deliveries (a retried txnId is recorded once per delivery, so duplicates would show). */
  events(): Json[] {
    return this.received.flatMap((r) => r.body.events ?? []);
  }

  ephemeral(): Json[] {
    return this.received.flatMap((r) => r.body.ephemeral ?? []);
  }

  async waitFor<T>(probe: () => T | undefined | false, what: string, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.received.map((r) => r.body))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const HS_TOKEN = 'hs-token-for-transactions-test';

describe.each(testDialects())('application service transactions on %s', (dialect) => {
  let server: TestServer;
  let as: FakeAppservice;
  let dir: string;
  let alice: TestUser;
  let bridgeBob: TestUser;
  let carol: TestUser;
  let roomId: string;
  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });

  const send = async (user: TestUser, room: string, body: string): Promise<string> => {
    const res = await api(user, 'PUT', `/rooms/${enc(room)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
    expect(res.status).toBe(200);
    return res.body.event_id;
  };

  beforeAll(async () => {
    as = new FakeAppservice();
    await as.start();
    dir = mkdtempSync(join(tmpdir(), 'skjol-as-'));
    const file = join(dir, 'registration.yaml');
    writeFileSync(
      file,
      [
        'id: test-bridge',
        `url: http://127.0.0.1:${as.port}`,
        'as_token: as-token-for-transactions-test',
        `hs_token: ${HS_TOKEN}`,
        'sender_localpart: bridgebot',
        'namespaces:',
        '  users:',
        '    - exclusive: false',
        "      regex: '@bridge_.*:localhost'",
        '  aliases: []',
        '  rooms: []',
        'rate_limited: false',
        'receive_ephemeral: true',
        'org.matrix.msc3202: true',
        '',
      ].join('\n'),
    );
    server = await startHomeserver({ dialect, config: { app_service_config_files: [file] } });
    alice = await registerUser(server.baseUrl, 'alice');
    bridgeBob = await registerUser(server.baseUrl, 'bridge_bob');
    carol = await registerUser(server.baseUrl, 'carol');
    roomId = (await api(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    expect((await api(bridgeBob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await as?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pushes events in the namespace, in order, with the hs_token', async () => {
    const ids = [await send(alice, roomId, 'one'), await send(alice, roomId, 'two'), await send(alice, roomId, 'three')];
    await as.waitFor(() => ids.every((id) => as.events().some((e) => e.event_id === id)), 'three messages');
    const seen = as.events().map((e) => e.event_id).filter((id) => ids.includes(id));
    expect(seen).toEqual(ids);
    const ev = as.events().find((e) => e.event_id === ids[0]);
    expect(ev).toMatchObject({ room_id: roomId, sender: alice.userId, type: 'm.room.message', content: { body: 'one' } });
    expect(as.received.every((r) => r.authorization === `Bearer ${HS_TOKEN}`)).toBe(true);
    // bridge_bob's join (state_key in the namespace) came too.
    expect(as.events().some((e) => e.type === 'm.room.member' && e.state_key === bridgeBob.userId)).toBe(true);
  });

  // As Synapse: txn ids are plain increasing integers (SyTest's AS stub answers only /transactions/\d+).
  it('numbers transactions with increasing all-digit ids', async () => {
    for (const body of ['n1', 'n2', 'n3']) {
      const id = await send(alice, roomId, body);
      await as.waitFor(() => as.events().some((e) => e.event_id === id), body);
    }
    const txns = as.received.map((r) => r.txnId);
    expect(txns.every((t) => /^\d+$/.test(t))).toBe(true);
    const numbers = txns.map(Number);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(new Set(numbers).size).toBe(numbers.length);
  });

  it('does not push events of rooms outside its namespaces', async () => {
    const other = (await api(carol, 'POST', '/createRoom', { preset: 'private_chat' })).body.room_id as string;
    const hidden = await send(carol, other, 'not for bridges');
    // Delivery is ordered: once a later in-namespace event arrived, the hidden one would have too.
    const marker = await send(alice, roomId, 'marker');
    await as.waitFor(() => as.events().some((e) => e.event_id === marker), 'the marker');
    expect(as.events().some((e) => e.event_id === hidden || e.room_id === other)).toBe(false);
  });

  it('retries a failed transaction with the same txnId and does not duplicate it', async () => {
    let failures = 0;
    const firstAttempt = as.attempts.length;
    as.failWith = () => {
      if (failures >= 1) return undefined;
      failures++;
      return 503;
    };
    const before = as.received.length;
    const id = await send(alice, roomId, 'retry me');
    const delivered = await as.waitFor(() => as.received.slice(before).find((r) => r.body.events.some((e: Json) => e.event_id === id)), 'the retried event');
    as.failWith = undefined;
    expect(failures).toBe(1);
    // The retry carried the failed attempt's txnId.
    expect(as.attempts.slice(firstAttempt)).toEqual([delivered.txnId, delivered.txnId]);
    // The server clears its pending transaction once it has read the answer, just after the service got it.
    const pendingTxn = async () => (await server.hs.services.db.knex('appservice_state').where({ service_id: 'test-bridge' }).first()).pending_txn_id;
    for (let i = 0; i < 100 && (await pendingTxn()) !== null; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await pendingTxn()).toBeNull();
    expect(as.events().filter((e) => e.event_id === id)).toHaveLength(1);
    expect(as.received.filter((r) => r.txnId === delivered.txnId)).toHaveLength(1);
  }, 30_000);

  it('keeps the queue across a restart while the service is down', async () => {
    const seenTxns: string[] = [];
    as.failWith = () => 503;
    const ids = [await send(alice, roomId, 'queued 1'), await send(alice, roomId, 'queued 2')];
    // Wait until a transaction was formed and failed.
    const db = () => server.hs.services.db.knex;
    const deadline = Date.now() + 10_000;
    let pendingTxn: string | null = null;
    while (Date.now() < deadline) {
      const row = await db()('appservice_state').where({ service_id: 'test-bridge' }).first();
      if (row?.pending_txn_id && Number(row.retry_count) > 0) {
        pendingTxn = row.pending_txn_id;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(pendingTxn).not.toBeNull();
    server = await server.restart();
    as.failWith = undefined;
    await as.waitFor(() => ids.every((id) => as.events().some((e) => e.event_id === id)), 'the queued events after restart', 20_000);
    for (const r of as.received) seenTxns.push(r.txnId);
    // The transaction formed before the restart is the one delivered after it.
    expect(seenTxns).toContain(pendingTxn);
    for (const id of ids) expect(as.events().filter((e) => e.event_id === id)).toHaveLength(1);
    expect(as.events().map((e) => e.event_id).filter((id) => ids.includes(id))).toEqual(ids);
  }, 40_000);

  it('pushes typing and receipts as ephemeral events (MSC2409)', async () => {
    expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 10_000 })).status).toBe(200);
    const typing = await as.waitFor(() => as.ephemeral().find((e) => e.type === 'm.typing' && e.content.user_ids.includes(alice.userId)), 'm.typing');
    expect(typing.room_id).toBe(roomId);
    const withTyping = as.received.find((r) => (r.body.ephemeral ?? []).includes(typing))!;
    expect(withTyping.body['de.sorunome.msc2409.ephemeral']).toEqual(withTyping.body.ephemeral);

    const target = await send(bridgeBob, roomId, 'read me');
    expect((await api(alice, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(target)}`, {})).status).toBe(200);
    const receipt = await as.waitFor(() => as.ephemeral().find((e) => e.type === 'm.receipt' && e.content[target]), 'm.receipt');
    expect(receipt.room_id).toBe(roomId);
    expect(receipt.content[target]['m.read'][alice.userId].ts).toEqual(expect.any(Number));
  }, 30_000);

  it('puts to-device messages for namespaced devices into the transaction (MSC2409/MSC3202)', async () => {
    const res = await api(alice, 'PUT', `/sendToDevice/m.test.ping/${Date.now()}`, {
      messages: { [bridgeBob.userId]: { [bridgeBob.deviceId]: { hello: 'bridge' } } },
    });
    expect(res.status).toBe(200);
    const msg = await as.waitFor(
      () => as.received.flatMap((r) => r.body['de.sorunome.msc2409.to_device'] ?? []).find((m: Json) => m.type === 'm.test.ping'),
      'the to-device message',
    );
    expect(msg).toEqual({ type: 'm.test.ping', sender: alice.userId, content: { hello: 'bridge' }, to_user_id: bridgeBob.userId, to_device_id: bridgeBob.deviceId });
    const carrying = as.received.find((r) => (r.body['de.sorunome.msc2409.to_device'] ?? []).includes(msg))!;
    expect(carrying.body['org.matrix.msc3202.device_one_time_keys_count'][bridgeBob.userId][bridgeBob.deviceId]).toMatchObject({ signed_curve25519: 0 });
    // Not also queued for the device's own /sync.
    const sync = await api(bridgeBob, 'GET', '/sync?timeout=0');
    expect(sync.status).toBe(200);
    expect((sync.body.to_device?.events ?? []).some((e: Json) => e.type === 'm.test.ping')).toBe(false);
  }, 30_000);

  it('reports device list changes of users sharing a room with namespaced users (MSC3202)', async () => {
    const lists = () => as.received.map((r) => r.body['org.matrix.msc3202.device_lists']).filter(Boolean);
    expect((await api(carol, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    await as.waitFor(() => lists().some((l: Json) => l.changed.includes(carol.userId)), 'carol in device_lists.changed');
    const before = as.received.length;
    expect((await api(carol, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    await as.waitFor(
      () => as.received.slice(before).some((r) => r.body['org.matrix.msc3202.device_lists']?.left.includes(carol.userId)),
      'carol in device_lists.left',
    );
  }, 30_000);
});
