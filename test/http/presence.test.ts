import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

function helpers(getServer: () => TestServer) {
  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(getServer().baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const sync = async (user: TestUser, params: Record<string, string | number> = {}): Promise<Json> => {
    const qs = Object.entries(params)
      .map(([k, v]) => `${k}=${enc(String(v))}`)
      .join('&');
    const res = await api(user, 'GET', `/sync${qs ? `?${qs}` : ''}`);
    if (res.status !== 200) throw new Error(`sync failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const sharedRoom = async (owner: TestUser, ...others: TestUser[]): Promise<string> => {
    const res = await api(owner, 'POST', '/createRoom', { preset: 'public_chat' });
    for (const u of others) expect((await api(u, 'POST', `/join/${enc(res.body.room_id)}`, {})).status).toBe(200);
    return res.body.room_id;
  };
  const presenceOf = (res: Json, userId: string): Json | undefined => {
    const events = res.presence.events.filter((e: Json) => e.sender === userId);
    for (const e of events) expect(e.type).toBe('m.presence');
    return events.at(-1)?.content;
  };
  const getPresence = (user: TestUser, userId: string) => api(user, 'GET', `/presence/${enc(userId)}/status`);
  return { api, sync, sharedRoom, presenceOf, getPresence, enc };
}

describe.each(testDialects())('presence on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let dave: TestUser;
  let aliceSdk: MatrixClient;
  const { api, sync, sharedRoom, presenceOf, getPresence, enc } = helpers(() => server);

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
    dave = await registerUser(server.baseUrl, 'dave');
    aliceSdk = sdkClient(server.baseUrl, alice);
    await sharedRoom(alice, bob, dave);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('sets and reads your own presence', async () => {
    await aliceSdk.setPresence({ presence: 'online', status_msg: 'Making tea' });
    const own = await aliceSdk.getPresence(alice.userId);
    expect(own.presence).toBe('online');
    expect(own.status_msg).toBe('Making tea');
    expect(own.currently_active).toBe(true);
    expect(own.last_active_ago).toBeGreaterThanOrEqual(0);

    await aliceSdk.setPresence({ presence: 'unavailable' });
    const away = (await getPresence(alice, alice.userId)).body;
    expect(away.presence).toBe('unavailable');
    expect(away.currently_active).toBe(false);
    expect(away.status_msg).toBeUndefined();
  });

  it('lets room peers read presence and refuses strangers', async () => {
    await aliceSdk.setPresence({ presence: 'online', status_msg: 'here' });
    const peer = await getPresence(bob, alice.userId);
    expect(peer.status).toBe(200);
    expect(peer.body).toMatchObject({ presence: 'online', status_msg: 'here', currently_active: true });
    const stranger = await getPresence(carol, alice.userId);
    expect(stranger.status).toBe(403);
    expect(stranger.body.errcode).toBe('M_FORBIDDEN');
    const forOther = await api(bob, 'PUT', `/presence/${enc(alice.userId)}/status`, { presence: 'offline' });
    expect(forOther.status).toBe(403);
    const bad = await api(alice, 'PUT', `/presence/${enc(alice.userId)}/status`, { presence: 'asleep' });
    expect(bad.status).toBe(400);
    // Someone who never said anything reads as offline.
    expect((await getPresence(carol, carol.userId)).body).toEqual({ presence: 'offline' });
  });

  it('shows presence to room peers in sync, and not to strangers', async () => {
    await aliceSdk.setPresence({ presence: 'online', status_msg: 'first' });
    const initial = await sync(bob, { set_presence: 'offline' });
    expect(presenceOf(initial, alice.userId)).toMatchObject({ presence: 'online', status_msg: 'first', currently_active: true });
    expect(presenceOf(initial, alice.userId).last_active_ago).toBeTypeOf('number');
    // Your own presence is not echoed back.
    expect(presenceOf(initial, bob.userId)).toBeUndefined();

    const waiting = sync(bob, { since: initial.next_batch, timeout: 20_000, set_presence: 'offline' });
    await new Promise((r) => setTimeout(r, 100));
    await aliceSdk.setPresence({ presence: 'unavailable', status_msg: 'second' });
    const next = await waiting;
    expect(presenceOf(next, alice.userId)).toMatchObject({ presence: 'unavailable', status_msg: 'second', currently_active: false });
    const quiet = await sync(bob, { since: next.next_batch, timeout: 0, set_presence: 'offline' });
    expect(quiet.presence.events).toEqual([]);

    const stranger = await sync(carol);
    expect(presenceOf(stranger, alice.userId)).toBeUndefined();
  });

  it('takes set_presence from /sync', async () => {
    const base = await sync(bob, { set_presence: 'offline' });
    // Dave has never said anything: syncing makes him online for his peers.
    const daveFirst = await sync(dave);
    const seen = await sync(bob, { since: base.next_batch, timeout: 5000, set_presence: 'offline' });
    expect(presenceOf(seen, dave.userId)).toMatchObject({ presence: 'online', currently_active: true });
    expect((await getPresence(bob, dave.userId)).body.presence).toBe('online');

    await sync(dave, { since: daveFirst.next_batch, timeout: 0, set_presence: 'unavailable' });
    const away = await sync(bob, { since: seen.next_batch, timeout: 5000, set_presence: 'offline' });
    expect(presenceOf(away, dave.userId)).toMatchObject({ presence: 'unavailable' });

    // set_presence=offline leaves the presence as it is.
    await sync(dave, { since: daveFirst.next_batch, timeout: 0, set_presence: 'offline' });
    expect((await getPresence(bob, dave.userId)).body.presence).toBe('unavailable');
  });
});

describe.each(testDialects())('presence disabled on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const { api, sync, sharedRoom, getPresence, enc } = helpers(() => server);

  beforeAll(async () => {
    server = await startHomeserver({ dialect, config: { presence: { enabled: false } } });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    await sharedRoom(alice, bob);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('accepts updates but reports everyone offline and sends no presence', async () => {
    const base = await sync(bob);
    const put = await api(alice, 'PUT', `/presence/${enc(alice.userId)}/status`, { presence: 'online', status_msg: 'hidden' });
    expect(put.status).toBe(200);
    expect((await getPresence(bob, alice.userId)).body).toEqual({ presence: 'offline' });
    expect((await getPresence(alice, alice.userId)).body).toEqual({ presence: 'offline' });
    await sync(alice);
    const next = await sync(bob, { since: base.next_batch, timeout: 0 });
    expect(next.presence.events).toEqual([]);
    expect((await sync(bob)).presence.events).toEqual([]);
  });
});
