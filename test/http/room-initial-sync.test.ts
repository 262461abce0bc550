import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request, type HttpResult } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// Element previews a room with GET /rooms/{roomId}/initialSync and throws when it is 404.
describe.each(testDialects())('room initialSync on %s', (dialect) => {
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

  const call = (user: TestUser, method: string, path: string, body?: unknown): Promise<HttpResult> =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, body });
  const room = (id: string) => `/rooms/${encodeURIComponent(id)}`;
  const say = async (user: TestUser, roomId: string, text: string): Promise<string> =>
    (await call(user, 'PUT', `${room(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body: text })).body.event_id;
  const bodies = (res: HttpResult) => res.body.messages.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);

  it('gives a member the newest messages in order, with tokens, state, receipts, presence and tags', async () => {
    const roomId = (await call(alice, 'POST', '/createRoom', { preset: 'private_chat' })).body.room_id;
    await say(alice, roomId, 'one');
    await say(alice, roomId, 'two');
    const three = await say(alice, roomId, 'three');
    await call(alice, 'POST', `${room(roomId)}/receipt/m.read/${encodeURIComponent(three)}`, {});
    await call(alice, 'PUT', `/user/${encodeURIComponent(alice.userId)}/rooms/${encodeURIComponent(roomId)}/tags/u.work`, { order: 0.5 });

    const res = await call(alice, 'GET', `${room(roomId)}/initialSync?limit=2`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ room_id: roomId, membership: 'join', visibility: 'private' });
    expect(bodies(res)).toEqual(['two', 'three']);
    expect(res.body.state.map((e: any) => e.type)).toEqual(expect.arrayContaining(['m.room.create', 'm.room.power_levels', 'm.room.member']));
    expect(res.body.receipts[0].content[three]['m.read'][alice.userId]).toBeDefined();
    expect(res.body.presence.map((p: any) => p.content.user_id)).toEqual([alice.userId]);
    expect(res.body.account_data).toContainEqual({ type: 'm.tag', content: { tags: { 'u.work': { order: 0.5 } } } });

    // `start` leads to the earlier messages.
    const earlier = await call(alice, 'GET', `${room(roomId)}/messages?dir=b&limit=1&from=${encodeURIComponent(res.body.messages.start)}`);
    expect(earlier.body.chunk.map((e: any) => e.content.body)).toEqual(['one']);
    expect(typeof res.body.messages.end).toBe('string');

    const none = await call(alice, 'GET', `${room(roomId)}/initialSync?limit=0`);
    expect(none.body.messages.chunk).toEqual([]);
    const r0 = await request(server.baseUrl, 'GET', `/_matrix/client/r0${room(roomId)}/initialSync`, { token: alice.accessToken });
    expect(bodies(r0)).toEqual(['one', 'two', 'three']);
    // The whole history is in the chunk: `start` still comes, and nothing lies before it.
    const before = await call(alice, 'GET', `${room(roomId)}/messages?dir=b&from=${encodeURIComponent(r0.body.messages.start)}`);
    expect([before.status, before.body.chunk]).toEqual([200, []]);
  });

  it('refuses a non-member of a room that is not world-readable with 403', async () => {
    const roomId = (await call(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    await say(alice, roomId, 'members only');
    const res = await call(eve, 'GET', `${room(roomId)}/initialSync`);
    expect([res.status, res.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    const unknown = await call(eve, 'GET', `${room('!nosuchroom:localhost')}/initialSync`);
    expect([unknown.status, unknown.body.errcode]).toEqual([403, 'M_FORBIDDEN']);
    const badLimit = await call(alice, 'GET', `${room(roomId)}/initialSync?limit=lots`);
    expect([badLimit.status, badLimit.body.errcode]).toEqual([400, 'M_INVALID_PARAM']);
  });

  it('lets a non-member peek into a world-readable room', async () => {
    const roomId = (await call(alice, 'POST', '/createRoom', {
      preset: 'public_chat',
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }],
    })).body.room_id;
    await say(alice, roomId, 'hello world');
    const res = await call(eve, 'GET', `${room(roomId)}/initialSync`);
    expect(res.status).toBe(200);
    expect(res.body.membership).toBeUndefined();
    expect(bodies(res)).toEqual(['hello world']);
    expect(res.body.state.find((e: any) => e.type === 'm.room.member' && e.state_key === alice.userId)).toBeDefined();

    const guest = (await request(server.baseUrl, 'POST', '/_matrix/client/v3/register?kind=guest', { body: {} })).body;
    const asGuest = await request(server.baseUrl, 'GET', `/_matrix/client/v3${room(roomId)}/initialSync`, { token: guest.access_token });
    expect(asGuest.status).toBe(200);
    expect(bodies(asGuest)).toEqual(['hello world']);
  });

  it('shows a departed member the room as it was when they left', async () => {
    const roomId = (await call(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    expect((await call(bob, 'POST', `${room(roomId)}/join`, {})).status).toBe(200);
    await say(alice, roomId, 'before');
    expect((await call(bob, 'POST', `${room(roomId)}/leave`, {})).status).toBe(200);
    await say(alice, roomId, 'after');
    await call(alice, 'PUT', `${room(roomId)}/state/m.room.topic/`, { topic: 'changed after bob left' });

    const res = await call(bob, 'GET', `${room(roomId)}/initialSync`);
    expect(res.status).toBe(200);
    expect(res.body.membership).toBe('leave');
    expect(bodies(res)).toEqual(['before']);
    expect(res.body.state.find((e: any) => e.type === 'm.room.topic')).toBeUndefined();
    expect(res.body.state.find((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId).content.membership).toBe('leave');
  });
});
