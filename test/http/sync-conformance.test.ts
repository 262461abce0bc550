import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// /sync behaviours SyTest checks (tests/31sync, 10apidoc/34room-messages), as Synapse and Dendrite answer.

type Json = any;

describe.each(testDialects())('/sync as SyTest expects it on %s', (dialect) => {
  let server: TestServer;
  let n = 0;
  let txn = 0;
  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown, skipSpecCheck = false) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, skipSpecCheck, ...(body !== undefined ? { body } : {}) });

  const user = () => registerUser(server.baseUrl, `syn${++n}`);

  async function sync(u: TestUser, params: Record<string, string | number | boolean | object> = {}, skipSpecCheck = false): Promise<Json> {
    const qs = Object.entries(params)
      .map(([k, v]) => `${k}=${enc(typeof v === 'object' ? JSON.stringify(v) : String(v))}`)
      .join('&');
    const res = await api(u, 'GET', `/sync${qs ? `?${qs}` : ''}`, undefined, skipSpecCheck);
    if (res.status !== 200) throw new Error(`sync failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }
  async function ok(res: Promise<{ status: number; body: Json }>): Promise<Json> {
    const r = await res;
    if (r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
  const createRoom = async (u: TestUser, body: Record<string, unknown> = {}): Promise<string> =>
    (await ok(api(u, 'POST', '/createRoom', { preset: 'public_chat', ...body }))).room_id;
  const send = async (u: TestUser, roomId: string, body: string): Promise<string> =>
    (await ok(api(u, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/c${++txn}`, { msgtype: 'm.text', body }))).event_id;
  const fill = async (u: TestUser, roomId: string, count: number) => {
    for (let i = 0; i < count; i++) await send(u, roomId, `filler ${i}`);
  };
  const join = (u: TestUser, roomId: string) => ok(api(u, 'POST', `/join/${enc(roomId)}`, {}));
  const leave = (u: TestUser, roomId: string) => ok(api(u, 'POST', `/rooms/${enc(roomId)}/leave`, {}));
  const putState = (u: TestUser, roomId: string, type: string, content: object, stateKey = '') =>
    ok(api(u, 'PUT', `/rooms/${enc(roomId)}/state/${type}/${enc(stateKey)}`, content));
  const members = (events: Json[]) =>
    Object.fromEntries(events.filter((e) => e.type === 'm.room.member').map((e) => [e.state_key, e.content.membership]));

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('an unlimited timeline has a prev_batch that pages back through the whole room, and /messages says `end` while events come', async () => {
    const alice = await user();
    const roomId = await createRoom(alice);
    await send(alice, roomId, 'Here is the message content');
    const room = (await sync(alice)).rooms.join[roomId];
    expect(room.timeline.limited).toBe(false);
    const page = await ok(api(alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&from=${enc(room.timeline.prev_batch)}`));
    expect(page.chunk.map((e: Json) => e.content.body)).toContain('Here is the message content');
    expect(page.end).toBeTypeOf('string');
    const last = await ok(api(alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&from=${enc(page.end)}`));
    expect(last.chunk).toEqual([]);
    expect(last.end).toBeUndefined();

    // A next_batch token pages forwards to what came after it.
    const { next_batch } = await sync(alice, { filter: { room: { timeline: { limit: 1 } } } });
    const later = await send(alice, roomId, '2');
    const forward = await ok(api(alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=f&from=${enc(next_batch)}`));
    expect(forward.chunk.map((e: Json) => e.event_id)).toEqual([later]);
    expect(forward.end).toBeTypeOf('string');
  });

  it('full_state=true with nothing new still gives the timeline a prev_batch', async () => {
    const alice = await user();
    const roomId = await createRoom(alice);
    const first = await sync(alice);
    const full = await sync(alice, { since: first.next_batch, full_state: true });
    const room = full.rooms.join[roomId];
    expect(room.state.events.length).toBeGreaterThan(0);
    expect(room.timeline.prev_batch).toBeTypeOf('string');
  });

  it('a newly joined room has a limited timeline, and an incremental sync with the members presence', async () => {
    const [alice, bob] = [await user(), await user()];
    const filter = { room: { timeline: { types: ['m.room.message'], limit: 10 }, state: { types: [] } } };
    const roomId = await createRoom(alice);
    await sync(alice);
    for (let i = 0; i < 4; i++) await send(alice, roomId, `test1-${i}`);
    const before = await sync(bob, { filter });
    for (let i = 0; i < 4; i++) await send(alice, roomId, `test2-${i}`);
    await join(bob, roomId);
    const after = await sync(bob, { filter, since: before.next_batch });
    const timeline = after.rooms.join[roomId].timeline;
    expect(timeline.events.every((e: Json) => e.type === 'm.room.message')).toBe(true);
    expect(timeline.limited).toBe(true);
    expect(after.presence.events.filter((e: Json) => e.sender === alice.userId)).toHaveLength(1);
    const quiet = await sync(bob, { since: after.next_batch });
    expect(quiet.presence.events.filter((e: Json) => e.sender !== bob.userId)).toEqual([]);
  });

  it('members who join a room come with their presence in the next sync, offline included', async () => {
    const [alice, bob] = [await user(), await user()];
    const roomId = await createRoom(alice);
    const first = await sync(alice);
    await join(bob, roomId); // bob never syncs: offline
    const next = await sync(alice, { since: first.next_batch });
    expect(next.presence.events.filter((e: Json) => e.sender === bob.userId).map((e: Json) => e.content.presence)).toEqual(['offline']);
    const quiet = await sync(alice, { since: next.next_batch });
    expect(quiet.presence.events.filter((e: Json) => e.sender === bob.userId)).toEqual([]);
  });

  it('a user sees their own presence, and a change of it, in their sync', async () => {
    const alice = await user();
    const filter = { presence: { types: ['m.presence'] }, account_data: { types: [] } };
    const first = await sync(alice, { filter });
    const again = await sync(alice, { filter });
    expect(again.presence.events.find((e: Json) => e.sender === alice.userId)?.content.presence).toBe('online');
    await ok(api(alice, 'PUT', `/presence/${enc(alice.userId)}/status`, { presence: 'online', status_msg: 'tea' }));
    const next = await sync(alice, { filter, since: first.next_batch });
    expect(next.presence.events.find((e: Json) => e.sender === alice.userId)?.content.status_msg).toBe('tea');
  });

  it('a change to the display name does not bring the room back when the filter hides member events', async () => {
    const alice = await user();
    const filter = { room: { timeline: { types: [] }, state: { types: ['a.madeup.test.state'] }, ephemeral: { types: [] } }, presence: { types: [] } };
    const roomId = await createRoom(alice);
    await putState(alice, roomId, 'a.madeup.test.state', { my_key: 1 });
    const first = await sync(alice, { filter });
    expect(first.rooms.join[roomId].state.events).toHaveLength(1);
    await putState(alice, roomId, 'm.room.member', { membership: 'join', displayname: 'boris' }, alice.userId);
    await send(alice, roomId, 'to wait on');
    const next = await sync(alice, { filter, since: first.next_batch });
    expect(next.rooms.join).toEqual({});
  });

  it('a room joined and left since the last sync comes with its full state in leave', async () => {
    const [alice, bob] = [await user(), await user()];
    const filter = { room: { timeline: { types: [] }, state: { types: ['a.madeup.test.state'] }, include_leave: true }, presence: { types: [] } };
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    await putState(alice, roomId, 'a.madeup.test.state', { my_key: 1 });
    await ok(api(alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId }));
    const first = await sync(bob, { filter });
    await join(bob, roomId);
    await leave(bob, roomId);
    const next = await sync(bob, { filter, since: first.next_batch });
    const state = next.rooms.leave[roomId].state.events;
    expect(state.map((e: Json) => [e.type, e.content.my_key])).toEqual([['a.madeup.test.state', 1]]);
  });

  it('current state shows in the timeline even when it happened while the user could not see the room', async () => {
    const [creator, syncer, invitee] = [await user(), await user(), await user()];
    const roomId = await createRoom(creator);
    await join(syncer, roomId);
    await putState(creator, roomId, 'm.room.history_visibility', { history_visibility: 'joined' });
    await ok(api(creator, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: invitee.userId }));
    const first = await sync(syncer);
    await leave(syncer, roomId);
    await join(invitee, roomId);
    await join(syncer, roomId);
    const next = await sync(syncer, { since: first.next_batch });
    const timeline = next.rooms.join[roomId].timeline.events;
    expect(timeline.some((e: Json) => e.type === 'm.room.member' && e.state_key === invitee.userId && e.content.membership === 'join')).toBe(true);
  });

  it('gives events in federation format when the filter asks for it', async () => {
    const alice = await user();
    const roomId = await createRoom(alice);
    const eventId = await send(alice, roomId, 'Test message');
    const res = await sync(alice, { filter: { event_format: 'federation', room: { timeline: { limit: 1 } } } }, true);
    const [event] = res.rooms.join[roomId].timeline.events;
    expect(event).toMatchObject({ event_id: eventId, room_id: roomId, sender: alice.userId, content: { body: 'Test message' } });
    for (const key of ['prev_events', 'auth_events', 'depth', 'hashes', 'signatures', 'origin_server_ts', 'type']) expect(event).toHaveProperty(key);
  });

  it('refuses filters whose room or sender lists hold something else than ids', async () => {
    const alice = await user();
    for (const filter of [
      { room: { timeline: { rooms: ['not_a_room_id'] } } },
      { room: { timeline: { senders: ['not_a_sender_id'] } } },
      { room: { not_rooms: ['nope'] } },
    ]) {
      const res = await api(alice, 'POST', `/user/${enc(alice.userId)}/filter`, filter);
      expect(res.status).toBe(400);
    }
    expect((await api(alice, 'POST', `/user/${enc(alice.userId)}/filter`, { room: { rooms: ['!abc:example.org'] } })).status).toBe(200);
  });

  it('a named room has a summary without heroes; counts follow membership', async () => {
    const [alice, bob, carol] = [await user(), await user(), await user()];
    const filter = { room: { state: { lazy_load_members: true } } };
    const roomId = await createRoom(alice);
    await putState(alice, roomId, 'm.room.name', { name: 'A room name' });
    await join(bob, roomId);
    const first = await sync(alice, { filter });
    expect(first.rooms.join[roomId].summary).toEqual({ 'm.joined_member_count': 2, 'm.invited_member_count': 0 });
    await join(carol, roomId);
    const second = await sync(alice, { filter, since: first.next_batch });
    expect(second.rooms.join[roomId].summary).toEqual({ 'm.joined_member_count': 3, 'm.invited_member_count': 0 });
    const unnamed = await createRoom(alice);
    await join(bob, unnamed);
    const third = await sync(alice, { filter, since: second.next_batch });
    expect(third.rooms.join[unnamed].summary['m.heroes']).toEqual([bob.userId]);
  });

  describe('lazy-loaded members in incremental syncs', () => {
    const ll = (extra: object = {}) => ({ room: { state: { lazy_load_members: true, ...extra }, timeline: { limit: 10 } } });

    it('sends the members of new senders once, and never the same member event twice unless asked', async () => {
      const [alice, bob, charlie] = [await user(), await user(), await user()];
      const roomId = await createRoom(alice);
      await putState(alice, roomId, 'm.room.name', { name: 'A room name' });
      await join(bob, roomId);
      await join(charlie, roomId);
      await fill(bob, roomId, 10);
      const first = await sync(alice, { filter: ll() });
      expect(members(first.rooms.join[roomId].state.events)).toEqual({ [alice.userId]: 'join', [bob.userId]: 'join' });
      await send(charlie, roomId, 'from charlie');
      const second = await sync(alice, { filter: ll(), since: first.next_batch });
      expect(members(second.rooms.join[roomId].state.events)).toEqual({ [charlie.userId]: 'join' });
      await send(bob, roomId, 'bob again');
      await send(charlie, roomId, 'charlie again');
      const third = await sync(alice, { filter: ll(), since: second.next_batch });
      expect(members(third.rooms.join[roomId].state.events)).toEqual({});

      // include_redundant_members: the senders' member events again (the user's own only when it changed).
      const redundant = ll({ include_redundant_members: true });
      const fourth = await sync(alice, { filter: redundant });
      await send(bob, roomId, 'bob once more');
      await send(charlie, roomId, 'charlie once more');
      const fifth = await sync(alice, { filter: redundant, since: fourth.next_batch });
      expect(members(fifth.rooms.join[roomId].state.events)).toEqual({ [bob.userId]: 'join', [charlie.userId]: 'join' });
    });

    it('a gappy sync carries every state change of the gap and the members of the timeline senders', async () => {
      const [alice, bob, charlie, dave] = [await user(), await user(), await user(), await user()];
      const roomId = await createRoom(alice);
      await putState(alice, roomId, 'm.room.name', { name: 'A room name' });
      await join(bob, roomId);
      await join(charlie, roomId);
      await fill(bob, roomId, 10);
      const first = await sync(alice, { filter: ll() });
      expect(members(first.rooms.join[roomId].state.events)).toEqual({ [alice.userId]: 'join', [bob.userId]: 'join' });
      await join(dave, roomId);
      await fill(charlie, roomId, 20);
      const second = await sync(alice, { filter: ll(), since: first.next_batch });
      expect(second.rooms.join[roomId].timeline.limited).toBe(true);
      expect(members(second.rooms.join[roomId].state.events)).toEqual({ [charlie.userId]: 'join', [dave.userId]: 'join' });
      await leave(dave, roomId);
      await fill(charlie, roomId, 20);
      const third = await sync(alice, { filter: ll(), since: second.next_batch });
      expect(members(third.rooms.join[roomId].state.events)).toEqual({ [dave.userId]: 'leave' });
    });
  });
});
