import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { loginDevice, registerUser, type TestUser } from '../helpers/users.js';

type Json = any;

const SS = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';

/** The room-list request Element X sends (trimmed): its list, state and timeline. */
const ELEMENT_X_STATE = [
  ['m.room.name', ''],
  ['m.room.avatar', ''],
  ['m.room.encryption', ''],
  ['m.room.member', '$ME'],
  ['m.room.create', ''],
];

// MSC4186 Simplified Sliding Sync over raw HTTP, answered as Synapse 1.120 answers Element X.
describe.each(testDialects())('sliding sync (MSC4186) on %s', (dialect) => {
  let server: TestServer;
  let txn = 0;
  let userCount = 0;
  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });

  async function ok(res: Promise<{ status: number; body: Json }>): Promise<Json> {
    const r = await res;
    if (r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
  const newUser = (name: string) => registerUser(server.baseUrl, `${name}${++userCount}`);
  const createRoom = async (user: TestUser, body: Record<string, unknown> = {}) => (await ok(api(user, 'POST', '/createRoom', body))).room_id as string;
  const send = async (user: TestUser, roomId: string, body: string) =>
    (await ok(api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body }))).event_id as string;
  const state = (user: TestUser, roomId: string, type: string, key: string, content: Json) => ok(api(user, 'PUT', `/rooms/${enc(roomId)}/state/${type}/${enc(key)}`, content));
  const join = (user: TestUser, roomId: string) => ok(api(user, 'POST', `/join/${enc(roomId)}`, {}));
  const leave = (user: TestUser, roomId: string) => ok(api(user, 'POST', `/rooms/${enc(roomId)}/leave`, {}));
  const ss = (user: TestUser, body: Json, query: { pos?: string; timeout?: number } = {}) => {
    const q = new URLSearchParams();
    if (query.pos !== undefined) q.set('pos', query.pos);
    if (query.timeout !== undefined) q.set('timeout', String(query.timeout));
    return request(server.baseUrl, 'POST', `${SS}?${q}`, { token: user.accessToken, body });
  };
  const bodies = (room: Json) => (room?.timeline ?? []).filter((e: Json) => e.type === 'm.room.message').map((e: Json) => e.content.body);
  const list = (ranges: number[][], extra: Json = {}) => ({ ranges, timeline_limit: 1, required_state: ELEMENT_X_STATE, ...extra });

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('is advertised in /versions', async () => {
    const res = await request(server.baseUrl, 'GET', '/_matrix/client/versions');
    expect(res.body.unstable_features['org.matrix.simplified_msc3575']).toBe(true);
  });

  it('gives a first window, then only the rooms that changed, with a prev_batch /messages continues', async () => {
    const alice = await newUser('alice');
    const a = await createRoom(alice, { name: 'A', preset: 'public_chat' });
    const b = await createRoom(alice, { name: 'B', preset: 'public_chat' });
    for (let i = 1; i <= 4; i++) await send(alice, a, `a${i}`);
    await send(alice, b, 'b1');
    const body = { lists: { all: { ranges: [[0, 9]], timeline_limit: 3, required_state: [['m.room.name', '']] } } };
    const first = await ok(ss(alice, body));
    expect(first.lists.all.count).toBe(2);
    expect(first.lists.all.ops).toEqual([{ op: 'SYNC', range: [0, 9], room_ids: [b, a] }]);
    const ra = first.rooms[a];
    expect(ra.initial).toBe(true);
    expect(ra.name).toBe('A');
    expect(ra.required_state.map((e: Json) => e.type)).toEqual(['m.room.name']);
    expect(bodies(ra)).toEqual(['a2', 'a3', 'a4']);
    expect(ra.limited).toBe(true);
    expect(ra.joined_count).toBe(1);
    expect(ra.timeline.every((e: Json) => e.room_id === undefined)).toBe(true);
    // prev_batch continues backwards where the timeline starts.
    const older = await ok(api(alice, 'GET', `/rooms/${enc(a)}/messages?dir=b&limit=2&from=${enc(ra.prev_batch)}`));
    expect(older.chunk.map((e: Json) => e.content.body)).toEqual(['a1', undefined]);

    await send(alice, a, 'a5');
    const second = await ok(ss(alice, body, { pos: first.pos }));
    expect(Object.keys(second.rooms)).toEqual([a]);
    const again = second.rooms[a];
    expect(again.initial).toBeUndefined();
    expect(again.name).toBeUndefined();
    expect(again.required_state).toBeUndefined();
    expect(bodies(again)).toEqual(['a5']);
    expect(again).toMatchObject({ limited: false, num_live: 1 });
    expect(again.bump_stamp).toBeGreaterThan(ra.bump_stamp);
    expect(second.lists.all.ops[0].room_ids).toEqual([a, b]);

    // Nothing new: no rooms (and the pos can be used again after a lost answer).
    const third = await ok(ss(alice, body, { pos: second.pos }));
    expect(third.rooms).toEqual({});
    const retried = await ok(ss(alice, body, { pos: second.pos }));
    expect(retried.rooms).toEqual({});
  });

  it('serves a user in 30+ rooms: windows by recency, filters, counts, DMs, invites, a space', async () => {
    const carol = await newUser('carol');
    const dave = await newUser('dave');
    const plain: string[] = [];
    for (let i = 0; i < 14; i++) plain.push(await createRoom(carol, { name: `plain ${i}`, preset: 'public_chat' }));
    const encrypted: string[] = [];
    for (let i = 0; i < 10; i++) encrypted.push(await createRoom(carol, { name: `secret ${i}`, preset: 'private_chat' }));
    const dms: string[] = [];
    for (let i = 0; i < 3; i++) {
      const dm = await createRoom(dave, { is_direct: true, preset: 'trusted_private_chat', invite: [carol.userId] });
      await join(carol, dm);
      dms.push(dm);
    }
    await ok(api(carol, 'PUT', `/user/${enc(carol.userId)}/account_data/m.direct`, { [dave.userId]: dms }));
    const invites: string[] = [];
    for (let i = 0; i < 2; i++) invites.push(await createRoom(dave, { name: `invite ${i}`, preset: 'private_chat', invite: [carol.userId] }));
    const space = await createRoom(carol, { name: 'Space', preset: 'public_chat', creation_content: { type: 'm.space' } });
    const children = plain.slice(0, 3);
    for (const child of children) await state(carol, space, 'm.space.child', child, { via: ['localhost'] });
    await send(carol, plain[5]!, 'recent');
    const all = [...plain, ...encrypted, ...dms, ...invites, space];
    expect(all.length).toBeGreaterThanOrEqual(30);

    const res = await ok(
      ss(carol, {
        lists: {
          window: list([[0, 9]]),
          dms: list([[0, 19]], { filters: { is_dm: true } }),
          notDms: list([[0, 0]], { filters: { is_dm: false } }),
          secret: list([[0, 99]], { filters: { is_encrypted: true, is_invite: false } }),
          invites: list([[0, 9]], { filters: { is_invite: true } }),
          spaces: list([[0, 9]], { filters: { room_types: ['m.space'] } }),
          rooms: list([[0, 0]], { filters: { not_room_types: ['m.space'] } }),
          inSpace: list([[0, 9]], { filters: { spaces: [space] } }),
        },
      }),
    );
    const ids = (name: string) => res.lists[name].ops[0].room_ids as string[];
    expect(res.lists.window.count).toBe(all.length);
    expect(ids('window')).toHaveLength(10);
    // Most recent first: the room just spoken in, then the space, then …
    expect(ids('window')[0]).toBe(plain[5]);
    expect(res.lists.dms.count).toBe(3);
    expect(new Set(ids('dms'))).toEqual(new Set(dms));
    expect(res.lists.notDms.count).toBe(all.length - 3);
    expect(res.lists.secret.count).toBe(10 + 3);
    expect(new Set(ids('secret'))).toEqual(new Set([...encrypted, ...dms]));
    expect(new Set(ids('invites'))).toEqual(new Set(invites));
    expect(ids('spaces')).toEqual([space]);
    expect(res.lists.rooms.count).toBe(all.length - 1);
    expect(new Set(ids('inSpace'))).toEqual(new Set(children));
    // Only rooms in some window are sent.
    const windowed = new Set(Object.values(res.lists).flatMap((l: Json) => l.ops[0].room_ids));
    expect(new Set(Object.keys(res.rooms))).toEqual(windowed);
    expect(res.rooms[dms[0]!].is_dm).toBe(true);
    expect(res.rooms[plain[5]!].is_dm).toBeUndefined();
    const inv = res.rooms[invites[0]!];
    expect(inv.initial).toBe(true);
    expect(inv.timeline).toBeUndefined();
    const own = inv.invite_state.find((e: Json) => e.type === 'm.room.member' && e.state_key === carol.userId);
    expect(own).toMatchObject({ sender: dave.userId, content: { membership: 'invite' } });
    expect(inv.invite_state.find((e: Json) => e.type === 'm.room.name').content.name).toBe('invite 0');
    // An unnamed DM: heroes without the user, with their display name.
    const dm = res.rooms[dms[0]!];
    expect(dm.name).toBeUndefined();
    expect(dm.heroes).toEqual([{ user_id: dave.userId, displayname: expect.any(String) }]);
    expect(dm.joined_count).toBe(2);
    expect(res.rooms[encrypted[0]!].required_state.some((e: Json) => e.type === 'm.room.encryption')).toBe(true);
  });

  it('required_state: "*", $LAZY and $ME; a room named only by alias gets heroes, not a computed name', async () => {
    const erin = await newUser('erin');
    const frank = await newUser('frank');
    const room = await createRoom(erin, { preset: 'public_chat', room_alias_name: `alias${userCount}` });
    await join(frank, room);
    await send(frank, room, 'hi from frank');
    const wildcard = await ok(ss(erin, { room_subscriptions: { [room]: { timeline_limit: 1, required_state: [['*', '*']] } } }));
    const types = new Set(wildcard.rooms[room].required_state.map((e: Json) => e.type));
    expect(types).toEqual(new Set(['m.room.create', 'm.room.member', 'm.room.power_levels', 'm.room.join_rules', 'm.room.history_visibility', 'm.room.canonical_alias']));
    expect(wildcard.rooms[room].name).toBeUndefined();
    expect(wildcard.rooms[room].heroes.map((h: Json) => h.user_id)).toEqual([frank.userId]);

    const lazy = await ok(ss(erin, { room_subscriptions: { [room]: { timeline_limit: 1, required_state: [['m.room.member', '$LAZY']] } } }));
    expect(lazy.rooms[room].required_state.map((e: Json) => e.state_key)).toEqual([frank.userId]);
    const me = await ok(ss(erin, { room_subscriptions: { [room]: { timeline_limit: 0, required_state: [['m.room.member', '$ME']] } } }));
    expect(me.rooms[room].required_state.map((e: Json) => e.state_key)).toEqual([erin.userId]);
    expect(me.rooms[room].timeline).toBeUndefined();

    // Incremental: a new sender's member event comes with their first message; a known one's does not again.
    const gina = await newUser('gina');
    await join(gina, room);
    const lazySub = { room_subscriptions: { [room]: { timeline_limit: 5, required_state: [['m.room.member', '$LAZY']] } } };
    const base = await ok(ss(erin, lazySub));
    await send(gina, room, 'gina speaks');
    await send(frank, room, 'frank again');
    const next = await ok(ss(erin, lazySub, { pos: base.pos }));
    const members = (next.rooms[room].required_state ?? []).map((e: Json) => e.state_key);
    expect(members).not.toContain(frank.userId);
    expect(bodies(next.rooms[room])).toEqual(['gina speaks', 'frank again']);
    // Asking for more state later sends what is newly asked for.
    const grown = await ok(ss(erin, { room_subscriptions: { [room]: { timeline_limit: 5, required_state: [['m.room.member', '$LAZY'], ['m.room.join_rules', '']] } } }, { pos: next.pos }));
    expect(grown.rooms[room].required_state.map((e: Json) => e.type)).toEqual(['m.room.join_rules']);
    expect(grown.rooms[room].initial).toBeUndefined();
  });

  it('a room that changed while out of the window comes back with what it missed, not as new', async () => {
    const uma = await newUser('uma');
    const a = await createRoom(uma, { name: 'a', preset: 'public_chat' });
    const b = await createRoom(uma, { name: 'b', preset: 'public_chat' });
    const body = { lists: { top: { ranges: [[0, 0]], timeline_limit: 10, required_state: [['m.room.topic', '']] } } };
    const first = await ok(ss(uma, body));
    expect(first.lists.top.ops[0].room_ids).toEqual([b]);
    // A topic change does not bump the room: `a` stays out of the window but has news.
    await state(uma, a, 'm.room.topic', '', { topic: 'quiet change' });
    const second = await ok(ss(uma, body, { pos: first.pos }));
    expect(second.rooms[a]).toBeUndefined();
    await send(uma, a, 'loud');
    const third = await ok(ss(uma, body, { pos: second.pos }));
    expect(third.lists.top.ops[0].room_ids).toEqual([a]);
    const room = third.rooms[a];
    expect(room.initial).toBe(true);
    // `a` was never sent on this connection: whole. Now `b` takes the window back after a message …
    await send(uma, b, 'b talks');
    const fourth = await ok(ss(uma, body, { pos: third.pos }));
    expect(fourth.rooms[b].initial).toBeUndefined();
    expect(bodies(fourth.rooms[b])).toEqual(['b talks']);
    // … and `a`, changed while out of the window, returns with only what it missed.
    await state(uma, a, 'm.room.topic', '', { topic: 'missed' });
    const fifth = await ok(ss(uma, body, { pos: fourth.pos }));
    expect(fifth.rooms).toEqual({});
    await send(uma, a, 'back');
    const sixth = await ok(ss(uma, body, { pos: fifth.pos }));
    const back = sixth.rooms[a];
    expect(back.initial).toBeUndefined();
    expect(back.timeline.map((e: Json) => e.content.topic ?? e.content.body)).toEqual(['missed', 'back']);
    expect(back.required_state.map((e: Json) => e.content.topic)).toEqual(['missed']);
  });

  it('a larger timeline_limit later sends the newest events again, marked as an expanded timeline', async () => {
    const wes = await newUser('wes');
    const room = await createRoom(wes, { preset: 'public_chat' });
    for (let i = 0; i < 5; i++) await send(wes, room, `e${i}`);
    const sub = (limit: number) => ({ room_subscriptions: { [room]: { timeline_limit: limit, required_state: [] } } });
    const first = await ok(ss(wes, sub(1)));
    expect(bodies(first.rooms[room])).toEqual(['e4']);
    const wider = await ok(ss(wes, sub(3), { pos: first.pos }));
    expect(bodies(wider.rooms[room])).toEqual(['e2', 'e3', 'e4']);
    expect(wider.rooms[room].unstable_expanded_timeline).toBe(true);
    expect(wider.rooms[room].initial).toBeUndefined();
    // A smaller limit is no news.
    const narrower = await ok(ss(wes, sub(1), { pos: wider.pos }));
    expect(narrower.rooms).toEqual({});
  });

  it('a left room is sent once with the leave and then drops out; kicked and banned rooms stay, with nothing after', async () => {
    const hal = await newUser('hal');
    const ivy = await newUser('ivy');
    const left = await createRoom(ivy, { name: 'left', preset: 'public_chat' });
    const kicked = await createRoom(ivy, { name: 'kicked', preset: 'public_chat' });
    const banned = await createRoom(ivy, { name: 'banned', preset: 'public_chat' });
    for (const r of [left, kicked, banned]) await join(hal, r);
    const body = { lists: { all: list([[0, 9]], { timeline_limit: 5 }) } };
    const first = await ok(ss(hal, body));
    expect(first.lists.all.count).toBe(3);

    await leave(hal, left);
    await ok(api(ivy, 'POST', `/rooms/${enc(kicked)}/kick`, { user_id: hal.userId, reason: 'out' }));
    await ok(api(ivy, 'POST', `/rooms/${enc(banned)}/ban`, { user_id: hal.userId }));
    const second = await ok(ss(hal, body, { pos: first.pos }));
    expect(second.lists.all.count).toBe(3);
    for (const [roomId, membership] of [[left, 'leave'], [kicked, 'leave'], [banned, 'ban']] as const) {
      const last = second.rooms[roomId].timeline.at(-1);
      expect(last).toMatchObject({ type: 'm.room.member', state_key: hal.userId, content: { membership } });
    }
    for (const r of [left, kicked, banned]) await send(ivy, r, 'after you went');
    const third = await ok(ss(hal, body, { pos: second.pos }));
    expect(third.lists.all.count).toBe(2);
    expect(new Set(third.lists.all.ops[0].room_ids)).toEqual(new Set([kicked, banned]));
    expect(third.rooms).toEqual({});
    // A new connection sees the same list, and nothing said after the kick or ban.
    const fresh = await ok(ss(hal, body));
    expect(fresh.lists.all.count).toBe(2);
    for (const r of [kicked, banned]) expect(bodies(fresh.rooms[r])).not.toContain('after you went');
  });

  it('room subscriptions carry their own timeline_limit and required_state, merged with lists', async () => {
    const jo = await newUser('jo');
    const r1 = await createRoom(jo, { name: 'r1', preset: 'public_chat' });
    const r2 = await createRoom(jo, { name: 'r2', preset: 'public_chat' });
    for (let i = 0; i < 6; i++) await send(jo, r1, `m${i}`);
    await send(jo, r2, 'newest');
    const res = await ok(
      ss(jo, {
        lists: { top: { ranges: [[0, 0]], timeline_limit: 1, required_state: [] } },
        room_subscriptions: { [r1]: { timeline_limit: 4, required_state: [['m.room.name', '']] }, '!unknown:localhost': { timeline_limit: 1, required_state: [] } },
      }),
    );
    expect(res.lists.top.ops[0].room_ids).toEqual([r2]);
    expect(bodies(res.rooms[r2])).toEqual(['newest']);
    expect(bodies(res.rooms[r1])).toEqual(['m2', 'm3', 'm4', 'm5']);
    expect(res.rooms[r1].required_state.map((e: Json) => e.content.name)).toEqual(['r1']);
    expect(res.rooms['!unknown:localhost']).toBeUndefined();
    // A room the user is not in is not readable through a subscription.
    const outsider = await newUser('outsider');
    const peek = await ok(ss(outsider, { room_subscriptions: { [r1]: { timeline_limit: 5, required_state: [['*', '*']] } } }));
    expect(peek.rooms).toEqual({});
  });

  it('extensions: to_device until acknowledged, e2ee counts and device lists, account data, receipts and typing', async () => {
    const kim = await newUser('kim');
    const lee = await newUser('lee');
    const room = await createRoom(kim, { name: 'ext', preset: 'public_chat' });
    const other = await createRoom(kim, { name: 'other', preset: 'public_chat' });
    await join(lee, room);
    await ok(api(kim, 'POST', '/keys/upload', { one_time_keys: { 'signed_curve25519:AAAA': { key: 'k1', signatures: {} } } }));
    const extensions = {
      to_device: { enabled: true },
      e2ee: { enabled: true },
      account_data: { enabled: true },
      receipts: { enabled: true },
      typing: { enabled: true },
    };
    const lists = { main: list([[0, 0]]), rest: list([[1, 1]]) };
    await ok(api(kim, 'PUT', `/user/${enc(kim.userId)}/account_data/org.example.global`, { a: 1 }));
    await ok(api(kim, 'PUT', `/user/${enc(kim.userId)}/rooms/${enc(room)}/account_data/org.example.room`, { b: 2 }));
    const older = await send(lee, room, 'older');
    await ok(api(lee, 'POST', `/rooms/${enc(room)}/receipt/m.read/${enc(older)}`, {}));
    await ok(api(kim, 'POST', `/rooms/${enc(room)}/receipt/m.read/${enc(older)}`, {}));
    const event = await send(lee, room, 'read me');
    await ok(api(lee, 'POST', `/rooms/${enc(room)}/receipt/m.read/${enc(event)}`, {}));
    await ok(api(lee, 'PUT', `/sendToDevice/m.test/t${++txn}`, { messages: { [kim.userId]: { [kim.deviceId]: { n: 1 } } } }));

    const first = await ok(ss(kim, { lists, extensions }));
    const ext = first.extensions;
    expect(typeof ext.to_device.next_batch).toBe('string');
    expect(ext.to_device.events).toEqual([{ sender: lee.userId, type: 'm.test', content: { n: 1 } }]);
    expect(ext.e2ee.device_one_time_keys_count).toEqual({ signed_curve25519: 1 });
    expect(ext.e2ee.device_lists).toBeUndefined();
    expect(ext.account_data.global).toContainEqual({ type: 'org.example.global', content: { a: 1 } });
    expect(ext.account_data.rooms[room]).toEqual([{ type: 'org.example.room', content: { b: 2 } }]);
    expect(ext.receipts.rooms[room].type).toBe('m.receipt');
    // A room new to the connection: receipts on its timeline's events, and the user's own (as Synapse).
    expect(Object.keys(ext.receipts.rooms[room].content).sort()).toEqual([event, older].sort());
    expect(ext.receipts.rooms[room].content[event]['m.read'][lee.userId]).toBeDefined();
    expect(Object.keys(ext.receipts.rooms[room].content[older]['m.read'])).toEqual([kim.userId]);
    expect(ext.e2ee.device_unused_fallback_key_types).toEqual([]);

    // Not acknowledged: the message comes again; acknowledged: it is gone.
    const repeat = await ok(ss(kim, { lists, extensions }, { pos: first.pos }));
    expect(repeat.extensions.to_device.events).toHaveLength(1);
    const acked = await ok(ss(kim, { lists, extensions: { ...extensions, to_device: { enabled: true, since: repeat.extensions.to_device.next_batch } } }, { pos: repeat.pos }));
    expect(acked.extensions.to_device.events).toEqual([]);

    // Typing in the room, a new device of lee, new account data: all in the next answer.
    await ok(api(lee, 'PUT', `/rooms/${enc(room)}/typing/${enc(lee.userId)}`, { typing: true, timeout: 30000 }));
    await loginDevice(server.baseUrl, lee, 'LEE2');
    await ok(api(kim, 'PUT', `/user/${enc(kim.userId)}/account_data/org.example.global`, { a: 2 }));
    const next = await ok(ss(kim, { lists, extensions: { ...extensions, to_device: { enabled: true, since: acked.extensions.to_device.next_batch } } }, { pos: acked.pos }));
    expect(next.extensions.typing.rooms[room]).toEqual({ type: 'm.typing', content: { user_ids: [lee.userId] } });
    expect(next.extensions.e2ee.device_lists.changed).toContain(lee.userId);
    expect(next.extensions.account_data.global).toEqual([{ type: 'org.example.global', content: { a: 2 } }]);

    // Scoped to one list: rooms outside it are left out.
    await ok(api(kim, 'PUT', `/user/${enc(kim.userId)}/rooms/${enc(other)}/account_data/org.example.room`, { c: 3 }));
    const scoped = await ok(ss(kim, { lists, extensions: { account_data: { enabled: true, lists: ['rest'], rooms: [] } } }));
    const restRooms = scoped.lists.rest.ops[0].room_ids as string[];
    expect(Object.keys(scoped.extensions.account_data.rooms).every((id) => restRooms.includes(id))).toBe(true);
  });

  it('extensions without data answer empty, with the key count Synapse always gives', async () => {
    const vic = await newUser('vic');
    const body = { lists: {}, extensions: { to_device: { enabled: true }, e2ee: { enabled: true }, account_data: { enabled: true }, receipts: { enabled: true }, typing: { enabled: true } } };
    const first = await ok(ss(vic, body));
    expect(first.lists).toBeUndefined();
    expect(first.extensions.e2ee).toEqual({ device_one_time_keys_count: { signed_curve25519: 0 }, device_unused_fallback_key_types: [] });
    expect(first.extensions.to_device.events).toEqual([]);
    expect(first.extensions.receipts).toEqual({ rooms: {} });
    expect(first.extensions.typing).toEqual({ rooms: {} });
    // As Synapse: the push rules are in the first account data even before the user changed one.
    const rules = first.extensions.account_data.global.find((e: Json) => e.type === 'm.push_rules');
    expect(rules.content.global.override.some((r: Json) => r.rule_id === '.m.rule.master')).toBe(true);
    const next = await ok(ss(vic, body, { pos: first.pos }));
    expect(next.extensions.e2ee.device_lists).toEqual({ changed: [], left: [] });
    // Key counts are not news: a long-poll with only them waits out its timeout.
    const started = Date.now();
    await ok(ss(vic, body, { pos: next.pos, timeout: 400 }));
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
  });

  it('a long-poll waits while nothing happens and answers when a message arrives', async () => {
    const max = await newUser('max');
    const ned = await newUser('ned');
    const room = await createRoom(max, { preset: 'public_chat' });
    await join(ned, room);
    const body = { lists: { all: list([[0, 9]]) } };
    const first = await ok(ss(max, body));
    const started = Date.now();
    const polling = ss(max, body, { pos: first.pos, timeout: 20_000 });
    await new Promise((r) => setTimeout(r, 300));
    const sentAt = Date.now();
    await send(ned, room, 'wake up');
    const res = await ok(polling);
    const answeredAt = Date.now();
    console.log(`sliding sync long-poll: answered ${answeredAt - sentAt} ms after the send returned`);
    expect(bodies(res.rooms[room])).toEqual(['wake up']);
    // Woken, not timed out.
    expect(answeredAt - started).toBeLessThan(20_000);
    // With nothing happening it returns empty at the timeout.
    const idle = await ok(ss(max, body, { pos: res.pos, timeout: 500 }));
    expect(idle.rooms).toEqual({});
  });

  it('resumes a connection with the same pos after a restart', async () => {
    const olga = await newUser('olga');
    const room = await createRoom(olga, { name: 'persist', preset: 'public_chat' });
    const body = { conn_id: 'room-list', lists: { all: list([[0, 9]]) } };
    const first = await ok(ss(olga, body));
    expect(first.rooms[room].initial).toBe(true);
    server = await server.restart();
    await send(olga, room, 'after restart');
    const next = await ok(ss(olga, body, { pos: first.pos }));
    expect(next.rooms[room].initial).toBeUndefined();
    expect(bodies(next.rooms[room])).toEqual(['after restart']);
  });

  it('one unreadable room is left out; the others still come', async () => {
    const yan = await newUser('yan');
    const good = await createRoom(yan, { name: 'good', preset: 'public_chat' });
    const broken = await createRoom(yan, { name: 'broken', preset: 'public_chat' });
    await server.hs.services.db.knex('rooms').where({ room_id: broken }).update({ room_version: 'org.example.unknown' });
    server = await server.restart();
    const res = await ok(ss(yan, { lists: { all: list([[0, 9]]) } }));
    expect(res.rooms[good].name).toBe('good');
    expect(res.rooms[broken]).toBeUndefined();
  });

  it('answers an unknown, foreign or garbled pos with 400 M_UNKNOWN_POS', async () => {
    const pat = await newUser('pat');
    const quinn = await newUser('quinn');
    await createRoom(pat, { preset: 'public_chat' });
    const body = { conn_id: 'a', lists: { all: list([[0, 9]]) } };
    const first = await ok(ss(pat, body));
    const cases: Array<[TestUser, Json, string]> = [
      [pat, { ...body, conn_id: 'b' }, first.pos],
      [quinn, body, first.pos],
      [pat, body, '999999/s1_1_0_0_0_0_0_0_0'],
      [pat, body, 'garbage'],
      [pat, body, '999999999999999/s1_1_0_0_0_0_0_0_0'],
      [pat, body, '1/s1_99999999999999999999_0'],
    ];
    for (const [user, b, pos] of cases) {
      const res = await ss(user, b, { pos });
      expect(res.status).toBe(400);
      expect(res.body.errcode).toBe('M_UNKNOWN_POS');
    }
    // Another device of the same user has its own connections.
    const other = await loginDevice(server.baseUrl, pat, 'PAT2');
    const res = await ss(other, body, { pos: first.pos });
    expect(res.body.errcode).toBe('M_UNKNOWN_POS');
    // A new connection with the same conn_id replaces the old one.
    await ok(ss(pat, body));
    expect((await ss(pat, body, { pos: first.pos })).body.errcode).toBe('M_UNKNOWN_POS');
  });

  it('refuses malformed lists, ranges, filters and extensions with 400, never 500', async () => {
    const rae = await newUser('rae');
    const good = { ranges: [[0, 1]], timeline_limit: 1, required_state: [] };
    const bad: Json[] = [
      { lists: [] },
      { lists: { l: { ...good, ranges: [[0]] } } },
      { lists: { l: { ...good, ranges: [[-1, 2]] } } },
      { lists: { l: { ...good, ranges: [[0.5, 2]] } } },
      { lists: { l: { ...good, ranges: 'all' } } },
      { lists: { l: { ranges: [[0, 1]], required_state: [] } } },
      { lists: { l: { ...good, timeline_limit: 1e9 } } },
      { lists: { l: { ...good, required_state: [['m.room.name']] } } },
      { lists: { l: { ...good, required_state: [[1, '']] } } },
      { lists: { l: { ...good, filters: { is_dm: 'yes' } } } },
      { lists: { l: { ...good, filters: { room_types: [7] } } } },
      { lists: { ['x'.repeat(65)]: good } },
      { room_subscriptions: { '!r:localhost': { timeline_limit: -1, required_state: [] } } },
      { extensions: { to_device: { enabled: true, since: 'abc' } } },
      { extensions: { account_data: { enabled: 'true' } } },
      { conn_id: 5 },
    ];
    for (const b of bad) {
      const res = await ss(rae, b);
      expect(res.status, JSON.stringify(b)).toBe(400);
      expect(['M_BAD_JSON', 'M_INVALID_PARAM', 'M_MISSING_PARAM']).toContain(res.body.errcode);
    }
    expect((await ss(rae, {}, { timeout: -1 as unknown as number })).status).toBe(400);
    // Hostile keys are ordinary names; unknown extensions are ignored.
    const res = await ss(rae, JSON.parse('{"lists":{"__proto__":{"ranges":[[0,1]],"timeline_limit":1,"required_state":[]},"constructor":{"ranges":[[0,1]],"timeline_limit":1,"required_state":[]}},"extensions":{"org.example.unknown":{"enabled":true}}}'));
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.lists)).toEqual(['constructor']);
  });
});
