import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('ignoring users on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  let txn = 0;
  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const say = async (user: TestUser, body: string): Promise<string> => {
    const res = await api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body });
    expect(res.status).toBe(200);
    return res.body.event_id;
  };
  const bodies = (events: Json[]) => events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
  const ignore = (userIds: string[]) => sdkClient(server.baseUrl, alice).setIgnoredUsers(userIds);

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    [alice, bob, carol] = (await Promise.all(['alice', 'bob', 'carol'].map((n) => registerUser(server.baseUrl, n)))) as [TestUser, TestUser, TestUser];
    roomId = (await api(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    await api(bob, 'POST', `/join/${enc(roomId)}`, {});
    await api(carol, 'POST', `/join/${enc(roomId)}`, {});
  });
  afterAll(async () => {
    await server?.close();
  });

  it('drops an ignored user’s messages from /sync but keeps their state events (matrix-js-sdk sets the list)', async () => {
    const base = (await api(alice, 'GET', '/sync')).body;
    await ignore([bob.userId]);
    const stored = await api(alice, 'GET', `/user/${enc(alice.userId)}/account_data/m.ignored_user_list`);
    expect(stored.body).toEqual({ ignored_users: { [bob.userId]: {} } });

    await say(bob, 'bob speaks');
    await say(carol, 'carol speaks');
    // A profile change is a state event (bob's member event): still delivered.
    expect((await api(bob, 'PUT', `/profile/${enc(bob.userId)}/displayname`, { displayname: 'Bob B.' })).status).toBe(200);
    const inc = (await api(alice, 'GET', `/sync?since=${enc(base.next_batch)}`)).body as Json;
    const timeline = inc.rooms.join[roomId].timeline.events;
    expect(bodies(timeline)).toEqual(['carol speaks']);
    expect(timeline.some((e: Json) => e.type === 'm.room.member' && e.sender === bob.userId && e.content.displayname === 'Bob B.')).toBe(true);
    expect(inc.account_data.events).toContainEqual({ type: 'm.ignored_user_list', content: { ignored_users: { [bob.userId]: {} } } });

    const initial = (await api(alice, 'GET', '/sync')).body as Json;
    expect(bodies(initial.rooms.join[roomId].timeline.events)).not.toContain('bob speaks');
    // Bob still sees everything.
    const bobs = (await api(bob, 'GET', '/sync')).body as Json;
    expect(bodies(bobs.rooms.join[roomId].timeline.events)).toEqual(expect.arrayContaining(['bob speaks', 'carol speaks']));
  });

  it('drops an ignored user’s messages from /messages and /context', async () => {
    await say(bob, 'bob again');
    const target = await say(carol, 'carol again');
    await say(bob, 'bob after');
    await say(carol, 'carol after');
    const messages = await api(alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=20`);
    expect(messages.status).toBe(200);
    const seen = bodies(messages.body.chunk);
    expect(seen).toEqual(expect.arrayContaining(['carol after', 'carol again', 'carol speaks']));
    expect(seen.filter((b) => b.startsWith('bob'))).toEqual([]);

    const context = await api(alice, 'GET', `/rooms/${enc(roomId)}/context/${enc(target)}?limit=10`);
    expect(context.status).toBe(200);
    expect(bodies(context.body.events_before)).not.toContain('bob again');
    expect(bodies(context.body.events_after)).toEqual(['carol after']);
  });

  it('does not deliver invites from an ignored user', async () => {
    const base = (await api(alice, 'GET', '/sync')).body;
    const fromBob = (await api(bob, 'POST', '/createRoom', { invite: [alice.userId] })).body.room_id;
    const fromCarol = (await api(carol, 'POST', '/createRoom', { invite: [alice.userId] })).body.room_id;
    const inc = (await api(alice, 'GET', `/sync?since=${enc(base.next_batch)}`)).body as Json;
    expect(Object.keys(inc.rooms?.invite ?? {})).toEqual([fromCarol]);
    const initial = (await api(alice, 'GET', '/sync')).body as Json;
    expect(Object.keys(initial.rooms.invite ?? {})).toContain(fromCarol);
    expect(Object.keys(initial.rooms.invite ?? {})).not.toContain(fromBob);
  });

  it('shows the user’s messages again once unignored', async () => {
    await ignore([]);
    const base = (await api(alice, 'GET', '/sync')).body;
    await say(bob, 'bob forgiven');
    const inc = (await api(alice, 'GET', `/sync?since=${enc(base.next_batch)}`)).body as Json;
    expect(bodies(inc.rooms.join[roomId].timeline.events)).toEqual(['bob forgiven']);
    const messages = await api(alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    expect(bodies(messages.body.chunk)).toContain('bob speaks');
  });
});
