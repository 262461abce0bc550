import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;
const enc = encodeURIComponent;

/**
 * A push gateway: a plain HTTP server that records every notify request it receives and answers as the
 * Push Gateway API says. `failNext` makes the next requests fail with 500; `reject` lists pushkeys it
 * answers as rejected.
 */
class Gateway {
  readonly received: Array<{ path: string; method: string; body: Json; status: number }> = [];
  failNext = 0;
  reject = new Set<string>();
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let body: Json;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined;
        }
        const status = this.failNext > 0 ? 500 : 200;
        if (this.failNext > 0) this.failNext--;
        this.received.push({ path: req.url ?? '', method: req.method ?? '', body, status });
        res.writeHead(status, { 'content-type': 'application/json' });
        if (status !== 200) {
          res.end(JSON.stringify({ errcode: 'M_UNKNOWN', error: 'gateway down' }));
          return;
        }
        const pushkeys: string[] = (body?.notification?.devices ?? []).map((d: Json) => d.pushkey);
        res.end(JSON.stringify({ rejected: pushkeys.filter((k) => this.reject.has(k)) }));
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/_matrix/push/v1/notify`;
  }

  delivered(): Json[] {
    return this.received.filter((r) => r.status === 200).map((r) => r.body.notification);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each(testDialects())('pushers on %s', (dialect) => {
  let server: TestServer;
  let gateway: Gateway;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  let txn = 0;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const pusher = (pushkey: string, data: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    pushkey,
    kind: 'http',
    app_id: 'org.example.app',
    app_display_name: 'Example',
    device_display_name: 'Phone',
    lang: 'en',
    data,
    ...extra,
  });
  const send = async (user: TestUser, content: Record<string, unknown>): Promise<string> => {
    const res = await api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, content);
    expect(res.status).toBe(200);
    return res.body.event_id;
  };

  beforeAll(async () => {
    gateway = new Gateway();
    await gateway.start();
    server = await startHomeserver({ dialect });
    // Retries come quickly in tests; the backoff still doubles.
    server.hs.services.push.pushers.delivery.options.retryBaseMs = 100;
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    const created = await api(alice, 'POST', '/createRoom', { preset: 'public_chat', name: 'Harbour' });
    roomId = created.body.room_id;
    await api(bob, 'POST', `/join/${enc(roomId)}`, {});
  });
  afterAll(async () => {
    await server?.close();
    await gateway?.stop();
  });

  it('sets, lists, replaces and deletes pushers through matrix-js-sdk', async () => {
    const client = sdkClient(server.baseUrl, alice);
    expect((await client.getPushers()).pushers).toEqual([]);
    await client.setPusher(pusher('key-1', { url: gateway.url, format: 'event_id_only' }, { profile_tag: 'tag' }) as never);
    expect((await client.getPushers()).pushers).toMatchObject([
      {
        pushkey: 'key-1',
        kind: 'http',
        app_id: 'org.example.app',
        app_display_name: 'Example',
        device_display_name: 'Phone',
        profile_tag: 'tag',
        lang: 'en',
        data: { url: gateway.url, format: 'event_id_only' },
      },
    ]);
    // The raw answer carries exactly the spec's fields (the SDK adds a default for MSC3881 itself).
    expect(Object.keys((await api(alice, 'GET', '/pushers')).body.pushers[0]).sort()).toEqual(
      ['app_display_name', 'app_id', 'data', 'device_display_name', 'kind', 'lang', 'profile_tag', 'pushkey'],
    );
    // Same app_id + pushkey for the same user: updated in place.
    await client.setPusher(pusher('key-1', { url: gateway.url }, { device_display_name: 'New phone' }) as never);
    const listed = (await client.getPushers()).pushers;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ device_display_name: 'New phone', data: { url: gateway.url } });
    expect(listed[0]!.profile_tag).toBeUndefined();
    await client.removePusher('key-1', 'org.example.app');
    expect((await client.getPushers()).pushers).toEqual([]);
  });

  it('keeps one (app_id, pushkey) per user unless append is true', async () => {
    expect((await api(alice, 'POST', '/pushers/set', pusher('shared', { url: gateway.url }))).status).toBe(200);
    expect((await api(bob, 'POST', '/pushers/set', pusher('shared', { url: gateway.url }, { append: true }))).status).toBe(200);
    expect((await api(alice, 'GET', '/pushers')).body.pushers).toHaveLength(1);
    expect((await api(bob, 'GET', '/pushers')).body.pushers).toHaveLength(1);
    // Without append, Bob's registration takes the pushkey away from Alice.
    expect((await api(bob, 'POST', '/pushers/set', pusher('shared', { url: gateway.url }))).status).toBe(200);
    expect((await api(alice, 'GET', '/pushers')).body.pushers).toEqual([]);
    expect((await api(bob, 'POST', '/pushers/set', { pushkey: 'shared', app_id: 'org.example.app', kind: null })).status).toBe(200);
    expect((await api(bob, 'GET', '/pushers')).body.pushers).toEqual([]);
  });

  // SyTest "Can fetch a user's pushers": a format other than event_id_only is kept and means full notifications.
  it('keeps a pusher with another data.format and custom data, and lists it back', async () => {
    const data = { url: gateway.url, format: 'id_event_only', testcustom: 'This is some custom data' };
    expect((await api(alice, 'POST', '/pushers/set', pusher('custom-format', data))).status).toBe(200);
    const listed = (await api(alice, 'GET', '/pushers')).body.pushers;
    expect(listed.find((p: Json) => p.pushkey === 'custom-format')?.data).toEqual(data);
    expect((await api(alice, 'POST', '/pushers/set', { pushkey: 'custom-format', app_id: 'org.example.app', kind: null })).status).toBe(200);
  });

  it('rejects bad pushers', async () => {
    const cases: Array<[unknown, string]> = [
      [pusher('k', {}), 'M_MISSING_PARAM'],
      [pusher('k', { url: 'http://gateway.example/notify' }), 'M_INVALID_PARAM'],
      [pusher('k', { url: 'ftp://gateway.example/_matrix/push/v1/notify' }), 'M_INVALID_PARAM'],
      [pusher('k', { url: 'not a url' }), 'M_INVALID_PARAM'],
      [pusher('k', { url: gateway.url }, { kind: 'email' }), 'M_INVALID_PARAM'],
      [pusher('k', { url: gateway.url }, { app_id: 'x'.repeat(65) }), 'M_INVALID_PARAM'],
      [pusher('k'.repeat(513), { url: gateway.url }), 'M_INVALID_PARAM'],
      [{ ...pusher('k', { url: gateway.url }), lang: undefined }, 'M_MISSING_PARAM'],
      [{ kind: 'http', app_id: 'a' }, 'M_MISSING_PARAM'],
      [{ ...pusher('k', { url: gateway.url }), append: 'yes' }, 'M_BAD_JSON'],
    ];
    for (const [body, errcode] of cases) {
      const res = await api(alice, 'POST', '/pushers/set', body);
      expect({ body, status: res.status, errcode: res.body.errcode }).toEqual({ body, status: 400, errcode });
    }
    expect((await api(alice, 'GET', '/pushers')).body.pushers).toEqual([]);
  });

  it('pushes a notification to the gateway, retrying with backoff when it fails', async () => {
    expect((await api(alice, 'POST', '/pushers/set', pusher('alice-phone', { url: gateway.url, custom: 'x' }))).status).toBe(200);
    gateway.received.length = 0;
    gateway.failNext = 2;
    const eventId = await send(bob, { msgtype: 'm.text', body: 'hello', 'm.mentions': { user_ids: [alice.userId] } });
    await waitFor(() => gateway.delivered().length === 1, 'the push after two failures');
    expect(gateway.received.map((r) => r.status)).toEqual([500, 500, 200]);
    for (const r of gateway.received) {
      expect(r.method).toBe('POST');
      expect(r.path).toBe('/_matrix/push/v1/notify');
      expect(r.body.notification.event_id).toBe(eventId);
    }
    const n = gateway.delivered()[0];
    expect(n).toEqual({
      id: eventId,
      event_id: eventId,
      room_id: roomId,
      type: 'm.room.message',
      sender: bob.userId,
      sender_display_name: 'bob',
      room_name: 'Harbour',
      prio: 'high',
      content: { msgtype: 'm.text', body: 'hello', 'm.mentions': { user_ids: [alice.userId] } },
      counts: { unread: 1 },
      devices: [
        {
          app_id: 'org.example.app',
          pushkey: 'alice-phone',
          pushkey_ts: expect.any(Number),
          data: { custom: 'x' },
          tweaks: { sound: 'default', highlight: true },
        },
      ],
    });
    // Bob sent it: nothing is pushed for him even with a pusher.
    expect(gateway.delivered().every((d: Json) => d.devices[0].pushkey !== 'bob-phone')).toBe(true);

    // Later events go out in order after the queue drained; the badge grows.
    const second = await send(bob, { msgtype: 'm.text', body: 'second' });
    await waitFor(() => gateway.delivered().length === 2, 'the second push');
    // Two members: .m.rule.room_one_to_one, with sound, so high priority.
    expect(gateway.delivered()[1]).toMatchObject({ event_id: second, prio: 'high', counts: { unread: 2 }, devices: [{ tweaks: { sound: 'default' } }] });
    await api(alice, 'POST', '/pushers/set', { pushkey: 'alice-phone', app_id: 'org.example.app', kind: null });
  });

  it('pushes an invite with its membership and the ids SyTest and older gateways read', async () => {
    expect((await api(alice, 'POST', '/pushers/set', pusher('alice-invites', { url: gateway.url }))).status).toBe(200);
    gateway.received.length = 0;
    const room = await api(bob, 'POST', '/createRoom', { preset: 'private_chat' });
    const invited = await api(bob, 'POST', `/rooms/${enc(room.body.room_id)}/invite`, { user_id: alice.userId });
    expect(invited.status).toBe(200);
    await waitFor(() => gateway.delivered().some((d: Json) => d.type === 'm.room.member'), 'the invite push');
    const n = gateway.delivered().find((d: Json) => d.type === 'm.room.member');
    expect(n).toMatchObject({ room_id: room.body.room_id, sender: bob.userId, membership: 'invite', user_is_target: true, content: { membership: 'invite' } });
    expect(n.id).toBe(n.event_id);
    expect(n.event_id).toMatch(/^\$/);
    await api(alice, 'POST', '/pushers/set', { pushkey: 'alice-invites', app_id: 'org.example.app', kind: null });
  });

  it('sends only ids to event_id_only pushers and drops pushers the gateway rejects', async () => {
    expect((await api(alice, 'POST', '/pushers/set', pusher('thin', { url: gateway.url, format: 'event_id_only' }))).status).toBe(200);
    gateway.received.length = 0;
    const eventId = await send(bob, { msgtype: 'm.text', body: 'secret' });
    await waitFor(() => gateway.delivered().length === 1, 'the event_id_only push');
    expect(gateway.delivered()[0]).toEqual({
      event_id: eventId,
      room_id: roomId,
      prio: 'high',
      counts: { unread: expect.any(Number) },
      devices: [{ app_id: 'org.example.app', pushkey: 'thin', pushkey_ts: expect.any(Number), data: { format: 'event_id_only' }, tweaks: { sound: 'default' } }],
    });

    gateway.reject.add('thin');
    await send(bob, { msgtype: 'm.text', body: 'again' });
    await waitFor(() => gateway.received.length === 2, 'the rejected push');
    await server.hs.services.push.pushers.delivery.idle();
    const left = await api(alice, 'GET', '/pushers');
    expect(left.body.pushers).toEqual([]);
  });

  // SyTest "Rooms with canonical alias are correctly named in pushed": no name, so the canonical alias.
  it('names a room without a name by its canonical alias in pushes', async () => {
    const room = (await api(alice, 'POST', '/createRoom', { preset: 'public_chat', room_alias_name: 'named-by-alias' })).body.room_id as string;
    expect((await api(bob, 'POST', `/join/${enc(room)}`, {})).status).toBe(200);
    expect((await api(alice, 'POST', '/pushers/set', pusher('alias-name', { url: gateway.url }))).status).toBe(200);
    const res = await api(bob, 'PUT', `/rooms/${enc(room)}/send/m.room.message/alias-${++txn}`, { msgtype: 'm.text', body: 'hi' });
    await waitFor(() => gateway.delivered().some((n: Json) => n.event_id === res.body.event_id), 'the push');
    expect(gateway.delivered().find((n: Json) => n.event_id === res.body.event_id).room_name).toBe('#named-by-alias:localhost');
    expect((await api(alice, 'POST', '/pushers/set', { pushkey: 'alias-name', app_id: 'org.example.app', kind: null })).status).toBe(200);
  });

  // SyTest "Test that a message is pushed" (its "zero badge" step), as Synapse's _send_badge.
  it('pushes the new badge (counts only) when the user sends a read receipt', async () => {
    expect((await api(alice, 'POST', '/pushers/set', pusher('badge', { url: gateway.url }))).status).toBe(200);
    gateway.received.length = 0;
    const eventId = await send(bob, { msgtype: 'm.text', body: 'read me' });
    await waitFor(() => gateway.delivered().some((n: Json) => n.event_id === eventId), 'the message push');
    const before = gateway.delivered().find((n: Json) => n.event_id === eventId).counts.unread as number;
    expect((await api(alice, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {})).status).toBe(200);
    await waitFor(() => gateway.delivered().some((n: Json) => n.event_id === undefined), 'the badge push');
    const badge = gateway.delivered().find((n: Json) => n.event_id === undefined);
    // This room is read now; only other rooms' notifications (from earlier tests) remain.
    const after = await server.hs.services.push.unreadTotal(alice.userId);
    expect(after).toBeLessThan(before);
    expect(badge).toEqual({ counts: { unread: after }, devices: [{ app_id: 'org.example.app', pushkey: 'badge', pushkey_ts: expect.any(Number), data: {} }] });
    expect((await api(alice, 'POST', '/pushers/set', { pushkey: 'badge', app_id: 'org.example.app', kind: null })).status).toBe(200);
  });

  it("removes a device's pushers when the device is logged out", async () => {
    const login = await request(server.baseUrl, 'POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: alice.password },
    });
    expect(login.status).toBe(200);
    const phone: TestUser = { ...alice, accessToken: login.body.access_token, deviceId: login.body.device_id };
    expect((await api(phone, 'POST', '/pushers/set', pusher('phone', { url: gateway.url }))).status).toBe(200);
    expect((await api(alice, 'POST', '/pushers/set', pusher('laptop', { url: gateway.url }))).status).toBe(200);
    expect((await api(phone, 'POST', '/logout', {})).status).toBe(200);
    const left = (await api(alice, 'GET', '/pushers')).body.pushers.map((p: Json) => p.pushkey);
    expect(left).toEqual(['laptop']);
  });
});
