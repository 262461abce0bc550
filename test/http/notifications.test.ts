import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notificationCounts } from '../../src/push/index.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;
const enc = encodeURIComponent;

describe.each(testDialects())('notifications on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let roomId: string;
  let txn = 0;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const send = async (user: TestUser, content: Record<string, unknown>, type = 'm.room.message', room = roomId): Promise<string> => {
    const res = await api(user, 'PUT', `/rooms/${enc(room)}/send/${type}/t${++txn}`, content);
    expect(res.status).toBe(200);
    return res.body.event_id;
  };
  const notifications = async (user: TestUser, qs = ''): Promise<Json> => {
    await server.hs.services.push.idle();
    const res = await api(user, 'GET', `/notifications${qs}`);
    expect(res.status).toBe(200);
    return res.body;
  };
  const db = () => server.hs.services.db.knex;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
    await api(alice, 'PUT', `/profile/${enc(alice.userId)}/displayname`, { displayname: 'Alice' });
    const created = await api(alice, 'POST', '/createRoom', { preset: 'public_chat', name: 'Tea room' });
    roomId = created.body.room_id;
    expect((await api(bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect((await api(carol, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('lists what notified, newest first, with highlight for a mention', async () => {
    // matrix-js-sdk sends the mention with m.mentions, as current clients do.
    const bobClient = sdkClient(server.baseUrl, bob);
    const plain = await send(bob, { msgtype: 'm.text', body: 'morning all' });
    const mention = (
      await bobClient.sendEvent(roomId, 'm.room.message' as never, {
        msgtype: 'm.text',
        body: 'Alice: are you there?',
        'm.mentions': { user_ids: [alice.userId] },
      } as never)
    ).event_id;
    await send(bob, { msgtype: 'm.notice', body: 'a bot notice' });
    await send(bob, { 'm.relates_to': { rel_type: 'm.annotation', event_id: plain, key: '👍' } }, 'm.reaction');
    await send(bob, { msgtype: 'm.text', body: '* morning everyone', 'm.new_content': { msgtype: 'm.text', body: 'morning everyone' }, 'm.relates_to': { rel_type: 'm.replace', event_id: plain } });

    const all = await notifications(alice);
    expect(all.notifications.map((n: Json) => n.event.event_id)).toEqual([mention, plain]);
    expect(all.next_token).toBeUndefined();
    const [first, second] = all.notifications;
    expect(first).toMatchObject({
      room_id: roomId,
      read: false,
      actions: ['notify', { set_tweak: 'sound', value: 'default' }, { set_tweak: 'highlight' }],
      event: { event_id: mention, sender: bob.userId, type: 'm.room.message', content: { body: 'Alice: are you there?' }, room_id: roomId },
    });
    expect(typeof first.ts).toBe('number');
    expect(second.actions).toEqual(['notify']);
    expect(first.profile_tag).toBe('');

    const highlights = await notifications(alice, '?only=highlight');
    expect(highlights.notifications.map((n: Json) => n.event.event_id)).toEqual([mention]);

    // Paging with limit and from.
    const page1 = await notifications(alice, '?limit=1');
    expect(page1.notifications.map((n: Json) => n.event.event_id)).toEqual([mention]);
    expect(typeof page1.next_token).toBe('string');
    const page2 = await notifications(alice, `?limit=1&from=${enc(page1.next_token)}`);
    expect(page2.notifications.map((n: Json) => n.event.event_id)).toEqual([plain]);

    // The sender is never notified of their own events; Carol was not mentioned.
    expect((await notifications(bob)).notifications).toEqual([]);
    expect((await notifications(carol)).notifications.map((n: Json) => n.event.event_id)).toEqual([mention, plain]);
    expect((await notifications(carol, '?only=highlight')).notifications).toEqual([]);

    const bad = await api(alice, 'GET', '/notifications?from=garbage');
    expect(bad.status).toBe(400);
    expect(bad.body.errcode).toBe('M_INVALID_PARAM');
    expect((await api(alice, 'GET', '/notifications?limit=-1')).body.errcode).toBe('M_INVALID_PARAM');
  });

  it('counts notifications per room after the read position, threads apart', async () => {
    const { body } = await api(alice, 'POST', '/createRoom', { preset: 'public_chat' });
    const room = body.room_id as string;
    await api(bob, 'POST', `/join/${enc(room)}`, {});
    await api(carol, 'POST', `/join/${enc(room)}`, {});
    const root = await send(bob, { msgtype: 'm.text', body: 'one' }, 'm.room.message', room);
    await send(bob, { msgtype: 'm.text', body: 'two', 'm.mentions': { user_ids: [alice.userId] } }, 'm.room.message', room);
    await send(bob, { msgtype: 'm.text', body: 'in thread', 'm.relates_to': { rel_type: 'm.thread', event_id: root } }, 'm.room.message', room);
    await server.hs.services.push.idle();

    const counts = await notificationCounts(db(), alice.userId, [room, '!elsewhere:localhost']);
    expect(counts.get(room)).toEqual({ notification_count: 3, highlight_count: 1 });
    expect(counts.get('!elsewhere:localhost')).toEqual({ notification_count: 0, highlight_count: 0 });

    const threaded = await notificationCounts(db(), alice.userId, [room], new Map(), { threaded: true });
    expect(threaded.get(room)).toEqual({ notification_count: 2, highlight_count: 1, threads: { [root]: { notification_count: 1, highlight_count: 0 } } });

    // Reading up to the first message leaves the mention and the thread reply.
    const rootEvent = await server.hs.services.rooms.events.get(db(), root);
    const afterRead = await notificationCounts(db(), alice.userId, [room], new Map([[room, rootEvent!.streamOrdering]]));
    expect(afterRead.get(room)).toEqual({ notification_count: 2, highlight_count: 1 });
    // The read flag of GET /notifications follows the same read positions.
    server.hs.services.push.readPositions = async () => new Map([[room, rootEvent!.streamOrdering]]);
    try {
      const listed = (await notifications(alice)).notifications.filter((n: Json) => n.room_id === room);
      expect(listed.map((n: Json) => n.read)).toEqual([false, false, true]);
    } finally {
      server.hs.services.push.readPositions = async () => new Map();
    }
  });

  it('follows the user rules: a disabled default rule or a muted room stops notifications', async () => {
    const { body } = await api(alice, 'POST', '/createRoom', { preset: 'public_chat' });
    const room = body.room_id as string;
    await api(bob, 'POST', `/join/${enc(room)}`, {});
    await api(carol, 'POST', `/join/${enc(room)}`, {});
    expect((await api(alice, 'PUT', `/pushrules/global/room/${enc(room)}`, { actions: [] })).status).toBe(200);
    await send(bob, { msgtype: 'm.text', body: 'muted' }, 'm.room.message', room);
    // Override rules still win over the room rule.
    const mention = await send(bob, { msgtype: 'm.text', body: 'hey', 'm.mentions': { user_ids: [alice.userId] } }, 'm.room.message', room);
    await server.hs.services.push.idle();
    const counts = await notificationCounts(db(), alice.userId, [room]);
    expect(counts.get(room)).toEqual({ notification_count: 1, highlight_count: 1 });
    expect((await notifications(alice)).notifications[0].event.event_id).toBe(mention);
    // Carol's rules are hers: she is notified of both.
    expect((await notificationCounts(db(), carol.userId, [room])).get(room)).toEqual({ notification_count: 2, highlight_count: 0 });
  });

  it('reaches a user in a muted room when a client without m.mentions names them (legacy rules, as Synapse)', async () => {
    const { body } = await api(alice, 'POST', '/createRoom', { preset: 'public_chat' });
    const room = body.room_id as string;
    await api(bob, 'POST', `/join/${enc(room)}`, {});
    await api(carol, 'POST', `/join/${enc(room)}`, {});
    expect((await api(alice, 'PUT', `/pushrules/global/room/${enc(room)}`, { actions: ['dont_notify'] })).status).toBe(200);
    await send(bob, { msgtype: 'm.text', body: 'nothing for anyone' }, 'm.room.message', room);
    const byName = await send(bob, { msgtype: 'm.text', body: 'Alice, tea?' }, 'm.room.message', room);
    const byUserId = await send(bob, { msgtype: 'm.text', body: `ping ${alice.userId}` }, 'm.room.message', room);
    // A client that sends m.mentions without Alice in it did not mean her: the legacy rules stand aside.
    await send(bob, { msgtype: 'm.text', body: 'Alice, tea?', 'm.mentions': {} }, 'm.room.message', room);
    const listed = (await notifications(alice)).notifications.filter((n: Json) => n.room_id === room);
    expect(listed.map((n: Json) => n.event.event_id)).toEqual([byUserId, byName]);
    for (const n of listed) expect(n.actions).toContainEqual({ set_tweak: 'highlight' });
  });

  it('notifies the invitee of an invite and one-to-one messages with sound', async () => {
    const { body } = await api(alice, 'POST', '/createRoom', { preset: 'private_chat', invite: [bob.userId], is_direct: true });
    const room = body.room_id as string;
    await server.hs.services.push.idle();
    const invite = (await notifications(bob)).notifications[0];
    expect(invite).toMatchObject({ room_id: room, event: { type: 'm.room.member', state_key: bob.userId }, actions: ['notify', { set_tweak: 'sound', value: 'default' }] });
    await api(bob, 'POST', `/join/${enc(room)}`, {});
    await send(alice, { msgtype: 'm.text', body: 'just us' }, 'm.room.message', room);
    const dm = (await notifications(bob)).notifications[0];
    expect(dm).toMatchObject({ room_id: room, event: { content: { body: 'just us' } }, actions: ['notify', { set_tweak: 'sound', value: 'default' }] });
  });
});
