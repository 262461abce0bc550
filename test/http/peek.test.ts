import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { loginDevice, registerUser, type TestUser } from '../helpers/users.js';

type Json = any;

// MSC2753 peeking: POST /peek, POST /rooms/{roomId}/unpeek and `rooms.peek` in /sync, per device.
describe.each(testDialects())('peeking (MSC2753) on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let txn = 0;

  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown, prefix = 'v3') =>
    request(server.baseUrl, method, `/_matrix/client/${prefix}${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });

  async function sync(user: TestUser, since?: string): Promise<Json> {
    const res = await api(user, 'GET', `/sync?timeout=0${since ? `&since=${enc(since)}` : ''}`);
    if (res.status !== 200) throw new Error(`sync failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async function createRoom(user: TestUser, body: Record<string, unknown> = {}): Promise<string> {
    const res = await api(user, 'POST', '/createRoom', body);
    if (res.status !== 200) throw new Error(`createRoom failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.room_id;
  }

  async function send(user: TestUser, roomId: string, body: string): Promise<string> {
    const res = await api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body });
    if (res.status !== 200) throw new Error(`send failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.event_id;
  }

  async function setVisibility(user: TestUser, roomId: string, visibility: string): Promise<void> {
    const res = await api(user, 'PUT', `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: visibility });
    if (res.status !== 200) throw new Error(`history_visibility failed: ${res.status} ${JSON.stringify(res.body)}`);
  }

  async function worldReadableRoom(extra: Record<string, unknown> = {}): Promise<string> {
    const roomId = await createRoom(alice, extra);
    await setVisibility(alice, roomId, 'world_readable');
    return roomId;
  }

  const peek = (user: TestUser, roomIdOrAlias: string, prefix = 'v3') => api(user, 'POST', `/peek/${enc(roomIdOrAlias)}`, {}, prefix);
  const unpeek = (user: TestUser, roomId: string) => api(user, 'POST', `/rooms/${enc(roomId)}/unpeek`, {});
  const bodies = (events: Json[]) => events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
  const peekedBodies = (res: Json, roomId: string): string[] => bodies(res.rooms.peek?.[roomId]?.timeline.events ?? []);
  /** The hooks that end peeks run just after the commit that ends them. */
  const settled = () => server.hs.services.sync.peeks.idle();

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a peeked world-readable room comes down whole under rooms.peek, then only what is new', async () => {
    const roomId = await createRoom(alice);
    await send(alice, roomId, 'before it was world-readable');
    await setVisibility(alice, roomId, 'world_readable');
    const before = await sync(bob);

    const res = await peek(bob, roomId);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ room_id: roomId });
    await send(alice, roomId, 'something to peek');

    const first = await sync(bob, before.next_batch);
    const room = first.rooms.peek[roomId];
    expect(room.timeline.events[0].type).toBe('m.room.create');
    expect(room.timeline.events.at(-1).content.body).toBe('something to peek');
    expect(typeof room.timeline.prev_batch).toBe('string');
    expect(room.state.events).toEqual([]);
    // History from before the room was world-readable stays hidden; its current state shows.
    expect(bodies(room.timeline.events)).toEqual(['something to peek']);
    expect(first.rooms.join[roomId]).toBeUndefined();

    const quiet = await sync(bob, first.next_batch);
    expect(quiet.rooms.peek?.[roomId]).toBeUndefined();

    await send(alice, roomId, 'something else to peek');
    const next = await sync(bob, quiet.next_batch);
    expect(next.rooms.peek[roomId].timeline.events.map((e: Json) => e.content.body)).toEqual(['something else to peek']);

    // An initial sync of the device carries the peek too.
    const initial = await sync(bob);
    expect(peekedBodies(initial, roomId)).toEqual(['something to peek', 'something else to peek']);
  });

  it('a long-polling sync wakes for an event in a peeked room', async () => {
    const roomId = await worldReadableRoom();
    expect((await peek(bob, roomId)).status).toBe(200);
    const base = await sync(bob);
    const polling = api(bob, 'GET', `/sync?timeout=30000&since=${enc(base.next_batch)}`);
    await send(alice, roomId, 'wake up');
    const res = await polling;
    expect(res.status).toBe(200);
    expect(peekedBodies(res.body, roomId)).toEqual(['wake up']);
  });

  it('peeks by alias, and under the r0 prefix', async () => {
    const roomId = await worldReadableRoom({ room_alias_name: 'peekable' });
    const base = await sync(bob);
    const res = await peek(bob, `#peekable:${server.serverName}`, 'r0');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ room_id: roomId });
    await send(alice, roomId, 'via alias');
    expect(peekedBodies(await sync(bob, base.next_batch), roomId)).toEqual(['via alias']);
  });

  it('refuses rooms that are not world-readable, unknown rooms and malformed ids', async () => {
    for (const visibility of ['shared', 'invited', 'joined']) {
      const roomId = await createRoom(alice);
      await setVisibility(alice, roomId, visibility);
      const res = await peek(bob, roomId);
      expect(res.status).toBe(403);
      expect(res.body.errcode).toBe('M_FORBIDDEN');
    }
    const unknown = await peek(bob, `!nowhere:${server.serverName}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_NOT_FOUND');
    expect((await peek(bob, `#nowhere:${server.serverName}`)).status).toBe(404);
    expect((await unpeek(bob, `!nowhere:${server.serverName}`)).status).toBe(404);
    for (const bad of ['not-a-room', '!', '#no-server', '! space:x', `!${'a'.repeat(300)}:x`]) {
      const res = await peek(bob, bad);
      expect(res.status, bad).toBe(400);
      expect(res.body.errcode, bad).toBe('M_INVALID_PARAM');
    }
    // A lone surrogate (as CESU-8 bytes) in an alias.
    expect((await api(bob, 'POST', `/peek/%23%ED%A0%80:${server.serverName}`, {})).status).toBe(400);
    expect((await unpeek(bob, 'not-a-room')).status).toBe(400);
    expect((await api(bob, 'POST', `/peek/${enc(`!nowhere:${server.serverName}`)}`, [])).status).toBe(400);
  });

  it('a peek belongs to the device that made it, and survives a restart', async () => {
    const roomId = await worldReadableRoom();
    const other = await loginDevice(server.baseUrl, bob);
    const otherBase = await sync(other);
    expect((await peek(bob, roomId)).status).toBe(200);
    await send(alice, roomId, 'for one device');
    expect(peekedBodies(await sync(bob), roomId)).toContain('for one device');
    const otherSync = await sync(other, otherBase.next_batch);
    expect(otherSync.rooms.peek).toBeUndefined();
    expect((await sync(other)).rooms.peek).toBeUndefined();

    const base = await sync(bob);
    server = await server.restart();
    await send(alice, roomId, 'after the restart');
    expect(peekedBodies(await sync(bob, base.next_batch), roomId)).toEqual(['after the restart']);
  });

  it('unpeek stops the room; peeking again brings it whole again', async () => {
    const roomId = await worldReadableRoom();
    expect((await peek(bob, roomId)).status).toBe(200);
    const base = await sync(bob);
    expect(base.rooms.peek[roomId]).toBeDefined();

    const res = await unpeek(bob, roomId);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({});
    await send(alice, roomId, 'not for bob');
    const after = await sync(bob, base.next_batch);
    expect(after.rooms.peek?.[roomId]).toBeUndefined();
    expect((await sync(bob)).rooms.peek?.[roomId]).toBeUndefined();
    // Unpeeking a room the device does not peek into is no error.
    expect((await unpeek(bob, roomId)).status).toBe(200);

    expect((await peek(bob, roomId)).status).toBe(200);
    const again = await sync(bob, after.next_batch);
    expect(again.rooms.peek[roomId].timeline.events[0].type).toBe('m.room.create');
    expect(peekedBodies(again, roomId)).toEqual(['not for bob']);
  });

  it('joining moves the room from peek to join for good', async () => {
    const roomId = await worldReadableRoom({ preset: 'public_chat' });
    expect((await peek(bob, roomId)).status).toBe(200);
    const base = await sync(bob);
    expect(base.rooms.peek[roomId]).toBeDefined();

    expect((await api(bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    await settled();
    await send(alice, roomId, 'as a member');
    const joined = await sync(bob, base.next_batch);
    expect(joined.rooms.peek?.[roomId]).toBeUndefined();
    expect(bodies(joined.rooms.join[roomId].timeline.events)).toContain('as a member');

    expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    const left = await sync(bob, joined.next_batch);
    await send(alice, roomId, 'after leaving');
    const later = await sync(bob, left.next_batch);
    expect(later.rooms.peek?.[roomId]).toBeUndefined();
    expect((await sync(bob)).rooms.peek?.[roomId]).toBeUndefined();

    // Peeking while joined adds nothing: the room stays under join only.
    expect((await api(bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect((await peek(bob, roomId)).status).toBe(200);
    const member = await sync(bob);
    expect(member.rooms.peek?.[roomId]).toBeUndefined();
    expect(member.rooms.join[roomId]).toBeDefined();
  });

  it('a room that stops being world-readable ends its peeks', async () => {
    const roomId = await worldReadableRoom();
    expect((await peek(bob, roomId)).status).toBe(200);
    const base = await sync(bob);
    expect(base.rooms.peek[roomId]).toBeDefined();
    await setVisibility(alice, roomId, 'shared');
    await settled();
    await send(alice, roomId, 'members only');
    const after = await sync(bob, base.next_batch);
    expect(peekedBodies(after, roomId)).toEqual([]);
    expect((await sync(bob)).rooms.peek?.[roomId]).toBeUndefined();
  });
});
