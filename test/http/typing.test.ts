import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('typing notifications on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let aliceSdk: MatrixClient;

  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });

  async function sync(user: TestUser, params: Record<string, string | number> = {}): Promise<Json> {
    const qs = Object.entries(params)
      .map(([k, v]) => `${k}=${enc(String(v))}`)
      .join('&');
    const res = await api(user, 'GET', `/sync${qs ? `?${qs}` : ''}`);
    if (res.status !== 200) throw new Error(`sync failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async function sharedRoom(): Promise<string> {
    const res = await api(alice, 'POST', '/createRoom', { preset: 'public_chat' });
    const roomId = res.body.room_id as string;
    expect((await api(bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    return roomId;
  }

  /** The m.typing user_ids of a room in a sync response, or undefined when the room has none. */
  const typingIn = (res: Json, roomId: string): string[] | undefined =>
    res.rooms.join[roomId]?.ephemeral.events.find((e: Json) => e.type === 'm.typing')?.content.user_ids;

  /** Long-polls until the room's typing list satisfies `predicate` (each poll ends when something changes). */
  async function syncUntilTyping(user: TestUser, since: string, roomId: string, predicate: (ids: string[]) => boolean): Promise<Json> {
    let token = since;
    for (let i = 0; i < 20; i++) {
      const res = await sync(user, { since: token, timeout: 10_000 });
      const ids = typingIn(res, roomId);
      if (ids && predicate(ids)) return res;
      token = res.next_batch;
    }
    throw new Error('typing state never reached');
  }

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
    aliceSdk = sdkClient(server.baseUrl, alice);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('shows typing to the other member, and its end', async () => {
    const roomId = await sharedRoom();
    const base = await sync(bob);
    expect(typingIn(base, roomId) ?? []).toEqual([]);

    // Bob is already waiting when Alice starts typing: the change wakes him.
    const waiting = sync(bob, { since: base.next_batch, timeout: 20_000 });
    await new Promise((r) => setTimeout(r, 100));
    await aliceSdk.sendTyping(roomId, true, 30_000);
    const started = await waiting;
    expect(typingIn(started, roomId)).toEqual([alice.userId]);

    // An initial sync shows who is typing now.
    expect(typingIn(await sync(bob), roomId)).toEqual([alice.userId]);

    await aliceSdk.sendTyping(roomId, false, 0);
    const stopped = await sync(bob, { since: started.next_batch, timeout: 5000 });
    expect(typingIn(stopped, roomId)).toEqual([]);
    const quiet = await sync(bob, { since: stopped.next_batch, timeout: 0 });
    expect(typingIn(quiet, roomId)).toBeUndefined();
  });

  it('ends typing by itself after the timeout', async () => {
    const roomId = await sharedRoom();
    const base = await sync(bob);
    const res = await api(alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 500 });
    expect(res.status).toBe(200);
    const typing = await syncUntilTyping(bob, base.next_batch, roomId, (ids) => ids.includes(alice.userId));
    expect(typingIn(typing, roomId)).toEqual([alice.userId]);
    const expired = await syncUntilTyping(bob, typing.next_batch, roomId, (ids) => ids.length === 0);
    expect(typingIn(expired, roomId)).toEqual([]);
    // A full sync says nobody types there any more (as Synapse), rather than leaving the room out.
    expect(typingIn(await sync(bob), roomId)).toEqual([]);
  });

  it('stops typing when the typist leaves the room', async () => {
    const roomId = await sharedRoom();
    const base = await sync(alice);
    await api(bob, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: true, timeout: 60_000 });
    const typing = await syncUntilTyping(alice, base.next_batch, roomId, (ids) => ids.includes(bob.userId));
    expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    const left = await syncUntilTyping(alice, typing.next_batch, roomId, (ids) => ids.length === 0);
    expect(typingIn(left, roomId)).toEqual([]);
  });

  it('refuses typing for someone else, or outside the room', async () => {
    const roomId = await sharedRoom();
    const forOther = await api(alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: true, timeout: 1000 });
    expect(forOther.status).toBe(403);
    expect(forOther.body.errcode).toBe('M_FORBIDDEN');
    const stranger = await api(carol, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(carol.userId)}`, { typing: true, timeout: 1000 });
    expect(stranger.status).toBe(403);
    const bad = await api(alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { timeout: 1000 });
    expect(bad.status).toBe(400);
    // Carol, who is not in the room, never sees its typing.
    await aliceSdk.sendTyping(roomId, true, 30_000);
    expect(typingIn(await sync(carol), roomId)).toBeUndefined();
    await aliceSdk.sendTyping(roomId, false, 0);
  });
});
