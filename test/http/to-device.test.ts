import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { loginDevice, registerUser, type TestUser } from '../helpers/users.js';

const V3 = '/_matrix/client/v3';

describe.each(testDialects())('to-device messages on %s', (dialect) => {
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

  const sync = (user: TestUser, since?: string, timeout = 0) =>
    request(server.baseUrl, 'GET', `${V3}/sync?timeout=${timeout}${since ? `&since=${encodeURIComponent(since)}` : ''}`, { token: user.accessToken });
  const send = (from: TestUser, txn: string, messages: unknown) =>
    request(server.baseUrl, 'PUT', `${V3}/sendToDevice/m.test/${txn}`, { token: from.accessToken, body: { messages } });

  it('delivers in order, once, and only to the addressed device; retries of a txnId change nothing', async () => {
    const bob2 = await loginDevice(server.baseUrl, bob, 'BOBTWO');
    const start = (await sync(bob)).body.next_batch;
    const start2 = (await sync(bob2)).body.next_batch;
    for (let i = 0; i < 3; i++) expect((await send(alice, `t${i}`, { [bob.userId]: { [bob.deviceId]: { n: i } } })).status).toBe(200);
    expect((await send(alice, 't1', { [bob.userId]: { [bob.deviceId]: { n: 1 } } })).status).toBe(200);

    const first = await sync(bob, start);
    expect(first.body.to_device.events.map((e: { content: { n: number } }) => e.content.n)).toEqual([0, 1, 2]);
    expect(first.body.to_device.events[0]).toMatchObject({ sender: alice.userId, type: 'm.test' });
    const second = await sync(bob, first.body.next_batch);
    expect(second.body.to_device.events).toEqual([]);
    expect((await sync(bob2, start2)).body.to_device.events).toEqual([]);
  });

  it('sends to every device with *', async () => {
    const carol = await registerUser(server.baseUrl, 'carol');
    const carol2 = await loginDevice(server.baseUrl, carol, 'CAROLTWO');
    const a = (await sync(carol)).body.next_batch;
    const b = (await sync(carol2)).body.next_batch;
    await send(alice, 'star', { [carol.userId]: { '*': { hello: 'all' } } });
    expect((await sync(carol, a)).body.to_device.events).toHaveLength(1);
    expect((await sync(carol2, b)).body.to_device.events).toHaveLength(1);
  });

  it('wakes a long-polling sync', async () => {
    const since = (await sync(bob)).body.next_batch;
    const pending = sync(bob, since, 20_000);
    await new Promise((r) => setTimeout(r, 100));
    await send(alice, 'wake', { [bob.userId]: { [bob.deviceId]: { wake: true } } });
    const res = await pending;
    expect(res.body.to_device.events.map((e: { content: unknown }) => e.content)).toEqual([{ wake: true }]);
  });

  it('delivers a large backlog in bounded batches without losing any', async () => {
    const dave = await registerUser(server.baseUrl, 'dave');
    const since = (await sync(dave)).body.next_batch;
    const messages = { [dave.userId]: { [dave.deviceId]: { n: 0 } } };
    for (let i = 0; i < 130; i++) {
      messages[dave.userId]![dave.deviceId] = { n: i };
      await send(alice, `bulk${i}`, messages);
    }
    const seen: number[] = [];
    let token = since;
    for (let round = 0; round < 5; round++) {
      const res = await sync(dave, token);
      expect(res.body.to_device.events.length).toBeLessThanOrEqual(100);
      seen.push(...res.body.to_device.events.map((e: { content: { n: number } }) => e.content.n));
      token = res.body.next_batch;
    }
    expect(seen).toEqual(Array.from({ length: 130 }, (_, i) => i));
  });

  it('keeps undelivered messages across a restart and delivers them exactly once', async () => {
    const erin = await registerUser(server.baseUrl, 'erin');
    const since = (await sync(erin)).body.next_batch;
    await send(alice, 'before-restart', { [erin.userId]: { [erin.deviceId]: { kept: true } } });
    server = await server.restart();
    const res = await sync(erin, since);
    expect(res.body.to_device.events.map((e: { content: unknown }) => e.content)).toEqual([{ kept: true }]);
    // A client that retries the same since token (its response was lost) gets the message again …
    const retry = await sync(erin, since);
    expect(retry.body.to_device.events).toHaveLength(1);
    // … and once it moves on, it never sees it again.
    const next = await sync(erin, res.body.next_batch);
    expect(next.body.to_device.events).toEqual([]);
  });

  it('reports one-time key counts and unused fallback key types in sync', async () => {
    await request(server.baseUrl, 'POST', `${V3}/keys/upload`, {
      token: bob.accessToken,
      body: { one_time_keys: { 'signed_curve25519:X1': { key: 'a', signatures: {} } }, fallback_keys: { 'signed_curve25519:F1': { key: 'f', fallback: true, signatures: {} } } },
    });
    const res = await sync(bob);
    expect(res.body.device_one_time_keys_count.signed_curve25519).toBe(1);
    expect(res.body.device_unused_fallback_key_types).toEqual(['signed_curve25519']);
  });

  it('tells room members when a user adds or removes a device, and when users start or stop sharing a room', async () => {
    const frank = await registerUser(server.baseUrl, 'frank');
    const gina = await registerUser(server.baseUrl, 'gina');
    const room = await request(server.baseUrl, 'POST', `${V3}/createRoom`, { token: frank.accessToken, body: { preset: 'public_chat' } });
    const roomId = room.body.room_id;
    let since = (await sync(frank)).body.next_batch;

    await request(server.baseUrl, 'POST', `${V3}/join/${encodeURIComponent(roomId)}`, { token: gina.accessToken, body: {} });
    let res = await sync(frank, since);
    expect(res.body.device_lists.changed).toContain(gina.userId);
    since = res.body.next_batch;

    const gina2 = await loginDevice(server.baseUrl, gina, 'GINATWO');
    res = await sync(frank, since);
    expect(res.body.device_lists.changed).toContain(gina.userId);
    since = res.body.next_batch;

    const del = await request(server.baseUrl, 'POST', `${V3}/delete_devices`, {
      token: gina2.accessToken,
      body: { devices: ['GINATWO'], auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: gina.userId }, password: gina.password } },
    });
    expect(del.status).toBe(200);
    res = await sync(frank, since);
    expect(res.body.device_lists.changed).toContain(gina.userId);
    since = res.body.next_batch;

    await request(server.baseUrl, 'POST', `${V3}/rooms/${encodeURIComponent(roomId)}/leave`, { token: gina.accessToken, body: {} });
    res = await sync(frank, since);
    expect(res.body.device_lists.left).toContain(gina.userId);

    const changes = await request(server.baseUrl, 'GET', `${V3}/keys/changes?from=${encodeURIComponent(since)}&to=${encodeURIComponent(res.body.next_batch)}`, {
      token: frank.accessToken,
    });
    expect(changes.body.left).toContain(gina.userId);
  });
});
