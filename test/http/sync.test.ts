import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('/sync on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let txn = 0;

  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });

  async function sync(user: TestUser, params: Record<string, string | number | boolean | object> = {}): Promise<Json> {
    const qs = Object.entries(params)
      .map(([k, v]) => `${k}=${enc(typeof v === 'object' ? JSON.stringify(v) : String(v))}`)
      .join('&');
    const res = await api(user, 'GET', `/sync${qs ? `?${qs}` : ''}`);
    if (res.status !== 200) throw new Error(`sync failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async function createRoom(user: TestUser, body: Record<string, unknown> = {}): Promise<string> {
    const res = await api(user, 'POST', '/createRoom', body);
    if (res.status !== 200) throw new Error(`createRoom failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.room_id;
  }

  async function send(user: TestUser, roomId: string, body: string, txnId = `t${++txn}`, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/${txnId}`, { msgtype: 'm.text', body, ...extra });
    if (res.status !== 200) throw new Error(`send failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.event_id;
  }

  async function join(user: TestUser, roomId: string): Promise<void> {
    const res = await api(user, 'POST', `/join/${enc(roomId)}`, {});
    if (res.status !== 200) throw new Error(`join failed: ${res.status} ${JSON.stringify(res.body)}`);
  }

  const bodies = (events: Json[]) => events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
  const types = (events: Json[]) => events.map((e) => e.type);

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('initial sync shows joined rooms with state, timeline and summary', async () => {
    const roomId = await createRoom(alice, { name: 'Initial', topic: 'first' });
    for (let i = 0; i < 3; i++) await send(alice, roomId, `hello ${i}`);
    const res = await sync(alice, { filter: { room: { timeline: { limit: 3 } } } });
    expect(res.next_batch).toMatch(/^s1_\d+(_\d+){7}$/);
    const room = res.rooms.join[roomId];
    expect(room).toBeDefined();
    expect(bodies(room.timeline.events)).toEqual(['hello 0', 'hello 1', 'hello 2']);
    expect(room.timeline.limited).toBe(true);
    expect(room.timeline.prev_batch).toBeTypeOf('string');
    expect(room.timeline.events[0].room_id).toBeUndefined();
    const stateTypes = types(room.state.events);
    for (const t of ['m.room.create', 'm.room.member', 'm.room.power_levels', 'm.room.join_rules', 'm.room.name', 'm.room.topic']) {
      expect(stateTypes).toContain(t);
    }
    expect(room.state.events.find((e: Json) => e.type === 'm.room.name').content.name).toBe('Initial');
    expect(room.summary['m.joined_member_count']).toBe(1);
    expect(room.summary['m.invited_member_count']).toBe(0);
    expect(room.ephemeral).toEqual({ events: [] });
    expect(room.unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
    // Nothing stored yet: only the push rules, which a whole sync always carries (as Synapse).
    expect(res.account_data.events.map((e: any) => e.type)).toEqual(['m.push_rules']);
    expect(res.account_data.events[0].content.global.underride.length).toBeGreaterThan(0);
    expect(res.to_device).toEqual({ events: [] });
    expect(res.device_lists).toEqual({});
    // The user's own presence only (as Synapse): nobody else shares a room yet.
    expect(res.presence.events.map((e: Json) => e.sender)).toEqual([alice.userId]);
  });

  it('answers a garbage since token with 400', async () => {
    const res = await api(alice, 'GET', '/sync?since=garbage');
    expect(res.status).toBe(400);
    expect(res.body.errcode).toBe('M_INVALID_PARAM');
    const tolerant = await api(alice, 'GET', '/sync?since=s1_1&timeout=0');
    expect(tolerant.status).toBe(200);
  });

  it('incremental sync returns only the new events, and omits unchanged rooms', async () => {
    const quiet = await createRoom(alice);
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await send(alice, quiet, 'before');
    const first = await sync(alice);
    expect(first.rooms.join[quiet]).toBeDefined();
    await send(bob, roomId, 'new one');
    const next = await sync(alice, { since: first.next_batch });
    expect(Object.keys(next.rooms.join)).toEqual([roomId]);
    const room = next.rooms.join[roomId];
    expect(bodies(room.timeline.events)).toEqual(['new one']);
    expect(room.timeline.limited).toBe(false);
    expect(room.state.events).toEqual([]);
    expect(room.unread_notifications.notification_count).toBe(1);
    // Nothing new: an empty answer that still moves on.
    const idle = await sync(alice, { since: next.next_batch, timeout: 0 });
    expect(idle.rooms.join).toEqual({});
    expect(idle.next_batch).toBe(next.next_batch);
  });

  it('long-polls until another user sends', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    const base = await sync(alice);
    const pending = sync(alice, { since: base.next_batch, timeout: 20_000 });
    await new Promise((r) => setTimeout(r, 150));
    await send(bob, roomId, 'wake up');
    const res = await pending;
    expect(bodies(res.rooms.join[roomId].timeline.events)).toEqual(['wake up']);
  });

  it('a long-poll with nothing new answers empty when the timeout ends', async () => {
    const base = await sync(alice);
    const res = await sync(alice, { since: base.next_batch, timeout: 200 });
    expect(res.rooms.join).toEqual({});
    expect(res.next_batch).toBe(base.next_batch);
  });

  it('a limited timeline has a prev_batch that paginates back through /messages', async () => {
    const roomId = await createRoom(alice);
    for (let i = 0; i < 15; i++) await send(alice, roomId, `m${i}`);
    const res = await sync(alice, { filter: { room: { rooms: [roomId], timeline: { limit: 5 } } } });
    expect(Object.keys(res.rooms.join)).toEqual([roomId]);
    const tl = res.rooms.join[roomId].timeline;
    expect(bodies(tl.events)).toEqual(['m10', 'm11', 'm12', 'm13', 'm14']);
    expect(tl.limited).toBe(true);
    const page = await api(alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=5&from=${enc(tl.prev_batch)}`);
    expect(page.status).toBe(200);
    expect(bodies(page.body.chunk)).toEqual(['m9', 'm8', 'm7', 'm6', 'm5']);

    // An incremental sync with more new events than the limit is limited too.
    const since = res.next_batch;
    for (let i = 15; i < 22; i++) await send(alice, roomId, `m${i}`);
    const inc = await sync(alice, { since, filter: { room: { timeline: { limit: 3 } } } });
    const itl = inc.rooms.join[roomId].timeline;
    expect(bodies(itl.events)).toEqual(['m19', 'm20', 'm21']);
    expect(itl.limited).toBe(true);
    const gap = await api(alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=4&from=${enc(itl.prev_batch)}`);
    expect(bodies(gap.body.chunk)).toEqual(['m18', 'm17', 'm16', 'm15']);
  });

  it('puts state changes from a gap before the timeline into state', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat', name: 'Old name' });
    await join(bob, roomId);
    const base = await sync(alice);
    expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'gap topic' })).status).toBe(200);
    for (let i = 0; i < 5; i++) await send(bob, roomId, `g${i}`);
    const res = await sync(alice, { since: base.next_batch, filter: { room: { timeline: { limit: 2 } } } });
    const room = res.rooms.join[roomId];
    expect(bodies(room.timeline.events)).toEqual(['g3', 'g4']);
    expect(room.timeline.limited).toBe(true);
    expect(room.state.events.map((e: Json) => [e.type, e.content])).toEqual([['m.room.topic', { topic: 'gap topic' }]]);

    // A state event the timeline filter leaves out still reaches the client through state.
    const next = res.next_batch;
    expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.name/`, { name: 'New name' })).status).toBe(200);
    await send(bob, roomId, 'after rename');
    const filtered = await sync(alice, { since: next, filter: { room: { timeline: { types: ['m.room.message'] } } } });
    const f = filtered.rooms.join[roomId];
    expect(bodies(f.timeline.events)).toEqual(['after rename']);
    expect(f.state.events.map((e: Json) => [e.type, e.content])).toEqual([['m.room.name', { name: 'New name' }]]);
  });

  it('shows an invite with stripped state, then moves the room to join when accepted', async () => {
    const roomId = await createRoom(alice, { name: 'Secret club', preset: 'private_chat' });
    const before = await sync(bob);
    expect(await api(alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId })).toMatchObject({ status: 200 });
    const invited = await sync(bob, { since: before.next_batch });
    const invite = invited.rooms.invite[roomId];
    expect(invite).toBeDefined();
    const stripped = invite.invite_state.events;
    for (const e of stripped) expect(Object.keys(e).sort()).toEqual(['content', 'sender', 'state_key', 'type']);
    expect(types(stripped)).toEqual(expect.arrayContaining(['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.member']));
    expect(stripped.find((e: Json) => e.type === 'm.room.member' && e.state_key === bob.userId).content.membership).toBe('invite');
    expect(stripped.find((e: Json) => e.type === 'm.room.member' && e.state_key === alice.userId)).toBeDefined();
    expect(invited.rooms.join[roomId]).toBeUndefined();

    // An initial sync shows the invite too.
    expect((await sync(bob)).rooms.invite[roomId]).toBeDefined();

    await join(bob, roomId);
    const joined = await sync(bob, { since: invited.next_batch, filter: { room: { timeline: { limit: 2 } } } });
    expect(joined.rooms.invite[roomId]).toBeUndefined();
    const room = joined.rooms.join[roomId];
    expect(room).toBeDefined();
    // Newly joined: full state, like an initial sync of that room.
    expect(types(room.state.events)).toContain('m.room.create');
    const myJoin = room.timeline.events.findLast((e: Json) => e.type === 'm.room.member' && e.state_key === bob.userId);
    expect(myJoin.content.membership).toBe('join');
    expect(room.summary['m.joined_member_count']).toBe(2);
  });

  it('shows a left room in the leave section, and left rooms in an initial sync only with include_leave', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await send(alice, roomId, 'before leaving');
    const base = await sync(bob);
    await send(alice, roomId, 'last words');
    expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    await send(alice, roomId, 'after bob left');
    const res = await sync(bob, { since: base.next_batch });
    expect(res.rooms.join[roomId]).toBeUndefined();
    const left = res.rooms.leave[roomId];
    expect(left).toBeDefined();
    const last = left.timeline.events[left.timeline.events.length - 1];
    expect(last.type).toBe('m.room.member');
    expect(last.state_key).toBe(bob.userId);
    expect(last.content.membership).toBe('leave');
    expect(bodies(left.timeline.events)).toEqual(['last words']);

    expect((await sync(bob)).rooms.leave[roomId]).toBeUndefined();
    const withLeave = await sync(bob, { filter: { room: { include_leave: true } } });
    expect(withLeave.rooms.leave[roomId]).toBeDefined();
    expect(bodies(withLeave.rooms.leave[roomId].timeline.events)).not.toContain('after bob left');

    // Forgotten rooms are not shown.
    expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/forget`, {})).status).toBe(200);
    expect((await sync(bob, { filter: { room: { include_leave: true } } })).rooms.leave[roomId]).toBeUndefined();
  });

  it('shows kicks, bans and rejected invites in the leave section', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    const base = await sync(bob);
    expect((await api(alice, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId, reason: 'out' })).status).toBe(200);
    const kicked = await sync(bob, { since: base.next_batch });
    const kick = kicked.rooms.leave[roomId].timeline.events.at(-1);
    expect(kick).toMatchObject({ type: 'm.room.member', state_key: bob.userId, sender: alice.userId, content: { membership: 'leave', reason: 'out' } });

    await join(bob, roomId);
    const rejoined = await sync(bob, { since: kicked.next_batch });
    expect(rejoined.rooms.join[roomId]).toBeDefined();
    expect((await api(alice, 'POST', `/rooms/${enc(roomId)}/ban`, { user_id: bob.userId })).status).toBe(200);
    const banned = await sync(bob, { since: rejoined.next_batch });
    expect(banned.rooms.leave[roomId].timeline.events.at(-1).content.membership).toBe('ban');

    const other = await createRoom(alice, { preset: 'private_chat' });
    await send(alice, other, 'private talk');
    await api(alice, 'POST', `/rooms/${enc(other)}/invite`, { user_id: carol.userId });
    const carolBase = await sync(carol);
    expect(carolBase.rooms.invite[other]).toBeDefined();
    expect((await api(carol, 'POST', `/rooms/${enc(other)}/leave`, {})).status).toBe(200);
    const rejected = await sync(carol, { since: carolBase.next_batch });
    expect(rejected.rooms.invite[other]).toBeUndefined();
    const left = rejected.rooms.leave[other];
    expect(left.timeline.events.at(-1)).toMatchObject({ type: 'm.room.member', state_key: carol.userId, content: { membership: 'leave' } });
    expect(bodies(left.timeline.events)).toEqual([]);
    expect(left.state.events).toEqual([]);
  });

  it('applies a stored filter and an inline filter (types, limit)', async () => {
    const roomId = await createRoom(alice, { name: 'Filtered' });
    for (let i = 0; i < 4; i++) await send(alice, roomId, `f${i}`);
    const filter = { room: { rooms: [roomId], timeline: { types: ['m.room.message'], limit: 2 }, state: { types: ['m.room.name'] } } };
    const created = await api(alice, 'POST', `/user/${enc(alice.userId)}/filter`, filter);
    expect(created.status).toBe(200);
    for (const param of [created.body.filter_id, JSON.stringify(filter)]) {
      const res = await sync(alice, { filter: param });
      expect(Object.keys(res.rooms.join)).toEqual([roomId]);
      const room = res.rooms.join[roomId];
      expect(types(room.timeline.events)).toEqual(['m.room.message', 'm.room.message']);
      expect(bodies(room.timeline.events)).toEqual(['f2', 'f3']);
      expect(room.timeline.limited).toBe(true);
      expect(types(room.state.events)).toEqual(['m.room.name']);
    }
    const unknown = await api(alice, 'GET', '/sync?filter=999999');
    expect(unknown.status).toBe(400);
    const bad = await api(alice, 'GET', `/sync?filter=${enc('{"room": {"timeline": {"limit": "ten"}}}')}`);
    expect(bad.status).toBe(400);
  });

  it('lazy-loads members: only timeline senders and the user themself', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await join(carol, roomId);
    await send(carol, roomId, 'carol speaks');
    await send(bob, roomId, 'bob speaks');
    const res = await sync(alice, { filter: { room: { rooms: [roomId], timeline: { limit: 1 }, state: { lazy_load_members: true } } } });
    const room = res.rooms.join[roomId];
    expect(bodies(room.timeline.events)).toEqual(['bob speaks']);
    const members = room.state.events.filter((e: Json) => e.type === 'm.room.member').map((e: Json) => e.state_key).sort();
    expect(members).toEqual([alice.userId, bob.userId].sort());
    expect(room.summary['m.joined_member_count']).toBe(3);
    expect(room.summary['m.heroes'].sort()).toEqual([bob.userId, carol.userId].sort());
    const full = await sync(alice, { filter: { room: { rooms: [roomId], timeline: { limit: 1 } } } });
    expect(full.rooms.join[roomId].state.events.filter((e: Json) => e.type === 'm.room.member')).toHaveLength(3);
  });

  it('hides history from before the join in a joined-visibility room', async () => {
    const roomId = await createRoom(alice, {
      preset: 'public_chat',
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
    });
    await send(alice, roomId, 'secret before bob');
    const base = await sync(bob);
    await join(bob, roomId);
    await send(alice, roomId, 'hello bob');
    for (const res of [await sync(bob, { since: base.next_batch }), await sync(bob)]) {
      const room = res.rooms.join[roomId];
      expect(room).toBeDefined();
      const seen = bodies(room.timeline.events);
      expect(seen).toContain('hello bob');
      expect(seen).not.toContain('secret before bob');
    }
  });

  it('gives the transaction id only to the device that sent the event', async () => {
    const roomId = await createRoom(alice);
    const login = await request(server.baseUrl, 'POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: alice.password },
    });
    expect(login.status).toBe(200);
    const second: TestUser = { ...alice, accessToken: login.body.access_token, deviceId: login.body.device_id };
    const eventId = await send(alice, roomId, 'with txn', 'my-txn-1');
    const filter = { room: { rooms: [roomId], timeline: { limit: 1 } } };
    const mine = (await sync(alice, { filter })).rooms.join[roomId].timeline.events[0];
    expect(mine.event_id).toBe(eventId);
    expect(mine.unsigned.transaction_id).toBe('my-txn-1');
    const other = (await sync(second, { filter })).rooms.join[roomId].timeline.events[0];
    expect(other.event_id).toBe(eventId);
    expect(other.unsigned.transaction_id).toBeUndefined();
  });

  it('counts a mention of the user as a highlight', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await join(bob, roomId);
    await send(bob, roomId, 'just chatting');
    await send(bob, roomId, 'hey alice, look', undefined, { 'm.mentions': { user_ids: [alice.userId] } });
    const res = await sync(alice, { filter: { room: { rooms: [roomId] } } });
    expect(res.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 2, highlight_count: 1 });
    await send(alice, roomId, 'read it');
    const after = await sync(alice, { filter: { room: { rooms: [roomId] } } });
    expect(after.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
  });

  it('full_state=true with a since token returns the full state of every joined room', async () => {
    const roomId = await createRoom(alice, { name: 'Full' });
    const base = await sync(alice);
    const res = await sync(alice, { since: base.next_batch, full_state: true });
    const room = res.rooms.join[roomId];
    expect(room).toBeDefined();
    expect(room.timeline.events).toEqual([]);
    expect(types(room.state.events)).toEqual(expect.arrayContaining(['m.room.create', 'm.room.name', 'm.room.member']));
  });

  it('serves /sync under r0 too', async () => {
    const res = await request(server.baseUrl, 'GET', '/_matrix/client/r0/sync?timeout=0', { token: alice.accessToken });
    expect(res.status).toBe(200);
    expect(res.body.next_batch).toMatch(/^s1_/);
  });
});
