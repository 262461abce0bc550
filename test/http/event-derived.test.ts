import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteDerivedEventRows } from '../../src/storage/repositories/eventDerived.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const enc = encodeURIComponent;

// The derived rows of an event (search index, notifications, relations) go when erasure or retention purge it.
describe.each(testDialects())('derived event rows on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;

  const send = async (user: TestUser, type: string, content: Record<string, unknown>): Promise<string> => {
    const res = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/${enc(type)}/${Math.random().toString(36).slice(2)}`, {
      token: user.accessToken,
      body: content,
    });
    expect(res.status).toBe(200);
    return res.body.event_id;
  };
  const searchIds = async (user: TestUser, term: string): Promise<string[]> => {
    const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/search', {
      token: user.accessToken,
      body: { search_categories: { room_events: { search_term: term } } },
    });
    expect(res.status).toBe(200);
    return res.body.search_categories.room_events.results.map((r: { result: { event_id: string } }) => r.result.event_id);
  };
  const notified = async (user: TestUser): Promise<string[]> => {
    const res = await request(server.baseUrl, 'GET', '/_matrix/client/v3/notifications', { token: user.accessToken });
    expect(res.status).toBe(200);
    return res.body.notifications.map((n: { event: { event_id: string } }) => n.event.event_id);
  };
  const children = async (user: TestUser, parent: string): Promise<string[]> => {
    const res = await request(server.baseUrl, 'GET', `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(parent)}`, { token: user.accessToken });
    expect(res.status).toBe(200);
    return res.body.chunk.map((e: { event_id: string }) => e.event_id);
  };

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    const created = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'public_chat' } });
    roomId = created.body.room_id;
    expect((await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: bob.accessToken, body: {} })).status).toBe(200);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('drops the search entries, notifications and relation rows of the given events only', async () => {
    const parent = await send(alice, 'm.room.message', { msgtype: 'm.text', body: 'parent words' });
    const gone = await send(bob, 'm.room.message', { msgtype: 'm.text', body: 'zanzibarmarker alice' });
    const kept = await send(bob, 'm.room.message', { msgtype: 'm.text', body: 'zanzibarmarker stays' });
    const reaction = await send(bob, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: parent, key: '👍' } });
    await expect.poll(() => searchIds(alice, 'zanzibarmarker')).toHaveLength(2);
    await expect.poll(() => children(alice, parent)).toEqual([reaction]);
    await expect.poll(() => notified(alice)).toContain(gone);

    await deleteDerivedEventRows(server.hs.services.db.knex, [gone, reaction]);
    // Idempotent: a second run (a resumed job) finds nothing left and does not fail.
    await deleteDerivedEventRows(server.hs.services.db.knex, [gone, reaction]);

    expect(await searchIds(alice, 'zanzibarmarker')).toEqual([kept]);
    expect(await children(alice, parent)).toEqual([]);
    const after = await notified(alice);
    expect(after).not.toContain(gone);
    expect(after).toContain(kept);
  });
});
