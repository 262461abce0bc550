import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request, type HttpResult } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// Client-Server API, legacy "GET /events": the flat event stream SyTest and old clients long-poll on.
describe.each(testDialects())('legacy event stream on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let eve: TestUser;
  let txn = 0;
  beforeAll(async () => {
    server = await startHomeserver({ dialect, config: { allow_guest_access: true } });
    [alice, bob, eve] = await Promise.all([registerUser(server.baseUrl, 'alice'), registerUser(server.baseUrl, 'bob'), registerUser(server.baseUrl, 'eve')]);
  });
  afterAll(async () => {
    await server?.close();
  });

  // The spec's schema for /events lists room events only; presence, typing and the rest ride along as on Synapse.
  const call = (user: { accessToken: string }, method: string, path: string, body?: unknown, prefix = 'v3', skipSpecCheck = false): Promise<HttpResult> =>
    request(server.baseUrl, method, `/_matrix/client/${prefix}${path}`, { token: user.accessToken, body, skipSpecCheck });
  const room = (id: string) => `/rooms/${encodeURIComponent(id)}`;
  const say = async (user: TestUser, roomId: string, text: string): Promise<string> =>
    (await call(user, 'PUT', `${room(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body: text })).body.event_id;
  const events = (user: { accessToken: string }, params: Record<string, string | number | undefined>, prefix = 'r0') => {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) query.set(k, String(v));
    return call(user, 'GET', `/events?${query}`, undefined, prefix, true);
  };
  const sharedRoom = async (): Promise<string> => {
    const roomId = (await call(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    expect((await call(bob, 'POST', `${room(roomId)}/join`, {})).status).toBe(200);
    return roomId;
  };
  const newGuest = async (): Promise<{ userId: string; accessToken: string }> => {
    const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register?kind=guest', { body: {} });
    return { userId: res.body.user_id, accessToken: res.body.access_token };
  };

  it('answers at once without a from token, and a long-poll wakes on another user’s message', async () => {
    const roomId = await sharedRoom();
    const first = await events(bob, { timeout: 0 });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ chunk: [], start: expect.any(String), end: expect.any(String) });

    const started = Date.now();
    const poll = events(bob, { from: first.body.end, timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    const id = await say(alice, roomId, 'wake up');
    const woken = await poll;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(woken.status).toBe(200);
    expect(woken.body.chunk).toContainEqual(expect.objectContaining({ event_id: id, room_id: roomId, type: 'm.room.message', sender: alice.userId }));

    // Continuity: from the new end nothing is repeated.
    const after = await events(bob, { from: woken.body.end, timeout: 0 });
    expect(after.body.chunk.filter((e: any) => e.type === 'm.room.message')).toEqual([]);
  });

  it('pages through many messages in order with limit, and accepts a /sync next_batch as from', async () => {
    const roomId = await sharedRoom();
    const sync = await call(bob, 'GET', '/sync?timeout=0');
    const sent: string[] = [];
    for (let i = 0; i < 12; i++) sent.push(await say(alice, roomId, `message ${i}`));
    const seen: string[] = [];
    let from = sync.body.next_batch as string;
    for (let i = 0; i < 10 && seen.length < sent.length; i++) {
      const page = await events(bob, { from, timeout: 0, limit: 5 });
      expect(page.status).toBe(200);
      expect(page.body.chunk.filter((e: any) => e.type === 'm.room.message').length).toBeLessThanOrEqual(5);
      seen.push(...page.body.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.event_id));
      from = page.body.end;
    }
    expect(seen).toEqual(sent);
  });

  it('carries typing, receipts, presence, tags and account data', async () => {
    const roomId = await sharedRoom();
    const start = (await events(bob, { timeout: 0 })).body.end;
    const msg = await say(alice, roomId, 'read me');
    await call(alice, 'PUT', `${room(roomId)}/typing/${encodeURIComponent(alice.userId)}`, { typing: true, timeout: 30_000 });
    await call(alice, 'POST', `${room(roomId)}/receipt/m.read/${encodeURIComponent(msg)}`, {});
    await call(alice, 'PUT', `/presence/${encodeURIComponent(alice.userId)}/status`, { presence: 'online', status_msg: 'here' });
    await call(bob, 'PUT', `/user/${encodeURIComponent(bob.userId)}/rooms/${encodeURIComponent(roomId)}/tags/u.work`, { order: 1 });
    await call(bob, 'PUT', `/user/${encodeURIComponent(bob.userId)}/account_data/org.example.global`, { a: 1 });
    await call(bob, 'PUT', `/user/${encodeURIComponent(bob.userId)}/rooms/${encodeURIComponent(roomId)}/account_data/org.example.room`, { b: 2 });

    const res = await events(bob, { from: start, timeout: 0 });
    const chunk = res.body.chunk as any[];
    expect(chunk).toContainEqual({ type: 'm.typing', room_id: roomId, content: { user_ids: [alice.userId] } });
    const receipt = chunk.find((e) => e.type === 'm.receipt' && e.room_id === roomId);
    expect(receipt.content[msg]['m.read'][alice.userId]).toBeDefined();
    const presence = chunk.find((e) => e.type === 'm.presence' && e.sender === alice.userId);
    expect(presence.content).toMatchObject({ user_id: alice.userId, presence: 'online', status_msg: 'here' });
    expect(chunk).toContainEqual({ type: 'm.tag', room_id: roomId, content: { tags: { 'u.work': { order: 1 } } } });
    expect(chunk).toContainEqual({ type: 'org.example.global', content: { a: 1 } });
    expect(chunk).toContainEqual({ type: 'org.example.room', room_id: roomId, content: { b: 2 } });
  });

  it('lets users and guests peek into a world-readable room with room_id, and refuses other rooms with 403', async () => {
    const open = (await call(alice, 'POST', '/createRoom', {
      preset: 'public_chat',
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }],
    })).body.room_id;
    const closed = (await call(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    const guest = await newGuest();

    for (const viewer of [eve, guest]) {
      const preview = await call(viewer, 'GET', `${room(open)}/initialSync`);
      expect(preview.status).toBe(200);
      // The room preview's end token continues into /events.
      const poll = events(viewer, { room_id: open, from: preview.body.messages.end, timeout: 10_000 });
      await new Promise((r) => setTimeout(r, 200));
      const id = await say(alice, open, 'for everyone');
      const res = await poll;
      expect(res.status).toBe(200);
      expect(res.body.chunk).toContainEqual(expect.objectContaining({ event_id: id, room_id: open }));
      // Nothing new: a guest's long-poll waits instead of answering at once.
      const started = Date.now();
      const quiet = await events(viewer, { room_id: open, from: res.body.end, timeout: 600 });
      expect(quiet.body.chunk).toEqual([]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);

      const refused = await events(viewer, { room_id: closed, timeout: 0 });
      expect([refused.status, refused.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    }
    // A guest must name the room it reads.
    const bare = await events(guest, { timeout: 0 });
    expect(bare.status).toBe(400);
  });

  it('refuses bad parameters with 400 and serves GET /events/{eventId} to those who may see it', async () => {
    const roomId = await sharedRoom();
    const id = await say(alice, roomId, 'look');
    for (const params of [{ limit: 'hello' }, { limit: -2 }, { timeout: 'hello' }, { from: 'garbage' }]) {
      const res = await events(alice, { timeout: 0, ...params });
      expect(res.status).toBe(400);
    }
    const got = await call(bob, 'GET', `/events/${encodeURIComponent(id)}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ event_id: id, room_id: roomId, content: { body: 'look' } });
    const hidden = await call(eve, 'GET', `/events/${encodeURIComponent(id)}`);
    expect(hidden.status).toBe(404);
    const missing = await call(bob, 'GET', `/events/${encodeURIComponent('$nope')}`);
    expect(missing.status).toBe(404);
  });

  it('global /initialSync lists joined rooms with limit, receipts, presence, tags and account data; 400 on a bad limit', async () => {
    const carol = await registerUser(server.baseUrl, 'carol');
    const roomId = (await call(alice, 'POST', '/createRoom', { preset: 'public_chat', visibility: 'public', name: 'Lobby' })).body.room_id;
    await call(carol, 'POST', `${room(roomId)}/join`, {});
    await say(alice, roomId, 'one');
    const two = await say(alice, roomId, 'two');
    await call(carol, 'POST', `${room(roomId)}/receipt/m.read/${encodeURIComponent(two)}`, {});
    await call(carol, 'PUT', `/user/${encodeURIComponent(carol.userId)}/rooms/${encodeURIComponent(roomId)}/tags/u.fav`, {});
    await call(carol, 'PUT', `/user/${encodeURIComponent(carol.userId)}/account_data/org.example.global`, { cats: true });
    const invitedTo = (await call(alice, 'POST', '/createRoom', { preset: 'private_chat', invite: [carol.userId] })).body.room_id;

    const res = await call(carol, 'GET', '/initialSync?limit=1', undefined, 'v3', true);
    expect(res.status).toBe(200);
    expect(typeof res.body.end).toBe('string');
    const entry = res.body.rooms.find((r: any) => r.room_id === roomId);
    expect(entry).toMatchObject({ membership: 'join', visibility: 'public', messages: { start: expect.any(String), end: expect.any(String) } });
    expect(entry.messages.chunk.map((e: any) => e.content.body)).toEqual(['two']);
    expect(entry.state.find((e: any) => e.type === 'm.room.name').content.name).toBe('Lobby');
    expect(entry.account_data).toContainEqual({ type: 'm.tag', content: { tags: { 'u.fav': {} } } });
    const receipt = res.body.receipts.find((r: any) => r.room_id === roomId && r.type === 'm.receipt');
    expect(receipt.content[two]['m.read'][carol.userId].ts).toEqual(expect.any(Number));
    expect(res.body.presence.map((p: any) => p.content.user_id)).toEqual(expect.arrayContaining([carol.userId, alice.userId]));
    expect(res.body.account_data).toContainEqual({ type: 'org.example.global', content: { cats: true } });
    const invite = res.body.rooms.find((r: any) => r.room_id === invitedTo);
    expect(invite).toMatchObject({ membership: 'invite', inviter: alice.userId, invite: { type: 'm.room.member', state_key: carol.userId } });

    const none = await call(carol, 'GET', '/initialSync?limit=0', undefined, 'r0', true);
    expect(none.body.rooms.find((r: any) => r.room_id === roomId).messages.chunk).toEqual([]);
    const bad = await call(carol, 'GET', '/initialSync?limit=hello', undefined, 'v3', true);
    expect([bad.status, bad.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);

    // The end token continues into the event stream.
    const three = await say(alice, roomId, 'three');
    const next = await events(carol, { from: res.body.end, timeout: 0 });
    expect(next.body.chunk.map((e: any) => e.event_id)).toContain(three);
  });

  it('global /initialSync shows a departed room only with archived=true, as it was when the user left', async () => {
    const roomId = (await call(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    await call(eve, 'POST', `${room(roomId)}/join`, {});
    await call(alice, 'PUT', `${room(roomId)}/state/madeup.test.state/`, { body: 'before' });
    await say(alice, roomId, 'before leaving');
    await call(eve, 'POST', `${room(roomId)}/leave`, {});
    await call(alice, 'PUT', `${room(roomId)}/state/madeup.test.state/`, { body: 'after' });
    await say(alice, roomId, 'after leaving');

    const plain = await call(eve, 'GET', '/initialSync', undefined, 'v3', true);
    expect(plain.body.rooms.find((r: any) => r.room_id === roomId)).toBeUndefined();
    const archived = await call(eve, 'GET', '/initialSync?archived=true&limit=2', undefined, 'v3', true);
    const entry = archived.body.rooms.find((r: any) => r.room_id === roomId);
    expect(entry.membership).toBe('leave');
    expect(entry.state.find((e: any) => e.type === 'madeup.test.state').content.body).toBe('before');
    expect(entry.messages.chunk.map((e: any) => e.content.body ?? e.content.membership)).toEqual(['before leaving', 'leave']);
  });

  it('a peek carries the room’s typing, receipts and its members’ presence, and nothing of other rooms', async () => {
    const open = (await call(alice, 'POST', '/createRoom', {
      preset: 'public_chat',
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }],
    })).body.room_id;
    const msg = await say(alice, open, 'peek at me');
    const start = (await events(eve, { room_id: open, timeout: 0 })).body.end;
    await call(alice, 'PUT', `${room(open)}/typing/${encodeURIComponent(alice.userId)}`, { typing: true, timeout: 30_000 });
    await call(alice, 'POST', `${room(open)}/receipt/m.read/${encodeURIComponent(msg)}`, {});
    await call(alice, 'PUT', `/presence/${encodeURIComponent(alice.userId)}/status`, { presence: 'online', status_msg: 'peeked' });
    await call(bob, 'PUT', `/presence/${encodeURIComponent(bob.userId)}/status`, { presence: 'online', status_msg: 'elsewhere' });
    const res = await events(eve, { room_id: open, from: start, timeout: 0 });
    const chunk = res.body.chunk as any[];
    expect(chunk).toContainEqual({ type: 'm.typing', room_id: open, content: { user_ids: [alice.userId] } });
    expect(chunk.find((e) => e.type === 'm.receipt' && e.room_id === open).content[msg]['m.read'][alice.userId]).toBeDefined();
    expect(chunk.find((e) => e.type === 'm.presence' && e.content.user_id === alice.userId).content.status_msg).toBe('peeked');
    expect(chunk.find((e) => e.type === 'm.presence' && e.content.user_id === bob.userId)).toBeUndefined();
  });

  it('global /initialSync shows a new user their own presence, and events come in the legacy format with user_id', async () => {
    const dave = await registerUser(server.baseUrl, 'dave');
    const res = await call(dave, 'GET', '/initialSync', undefined, 'v3', true);
    const own = res.body.presence.find((p: any) => p.content.user_id === dave.userId);
    expect(own).toMatchObject({ type: 'm.presence', content: { presence: 'online', last_active_ago: expect.any(Number) } });

    const roomId = (await call(dave, 'POST', '/createRoom', { preset: 'private_chat' })).body.room_id;
    const id = await say(dave, roomId, 'legacy');
    const snapshot = await call(dave, 'GET', `${room(roomId)}/initialSync`);
    expect(snapshot.body.state.find((e: any) => e.type === 'm.room.member').user_id).toBe(dave.userId);
    const single = await call(dave, 'GET', `/events/${encodeURIComponent(id)}`);
    expect(single.body).toMatchObject({ sender: dave.userId, user_id: dave.userId });
  });
});
