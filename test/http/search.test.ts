import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

const enc = encodeURIComponent;

describe.each(testDialects())('server-side search on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let aliceClient: MatrixClient;
  let bobClient: MatrixClient;
  let roomId: string;

  const send = async (user: TestUser, room: string, type: string, content: Record<string, unknown>): Promise<string> => {
    const res = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(room)}/send/${enc(type)}/${Math.random().toString(36).slice(2)}`, {
      token: user.accessToken,
      body: content,
    });
    expect(res.status).toBe(200);
    return res.body.event_id;
  };
  const text = (user: TestUser, room: string, body: string) => send(user, room, 'm.room.message', { msgtype: 'm.text', body });
  const search = (user: TestUser, roomEvents: Record<string, unknown>, nextBatch?: string) =>
    request(server.baseUrl, 'POST', `/_matrix/client/v3/search${nextBatch ? `?next_batch=${enc(nextBatch)}` : ''}`, {
      token: user.accessToken,
      body: { search_categories: { room_events: roomEvents } },
    });
  const ids = (res: { body: any }) => res.body.search_categories.room_events.results.map((r: { result: { event_id: string } }) => r.result.event_id);

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
    aliceClient = sdkClient(server.baseUrl, alice);
    bobClient = sdkClient(server.baseUrl, bob);
    roomId = (await aliceClient.createRoom({ preset: 'public_chat' as never, name: 'Walled Garden', topic: 'Hedgehogs and roses' })).room_id;
    await bobClient.joinRoom(roomId);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('finds unencrypted text with matrix-js-sdk, newest first, never encrypted or invisible events', async () => {
    const fox = await text(alice, roomId, 'The quick brown fox');
    await text(bob, roomId, 'lazy dogs sleep all day');
    const thinking = await text(bob, roomId, 'Quick thinking saves the day');
    // Encrypted events carry no searchable text, even with a stray body.
    await send(alice, roomId, 'm.room.encrypted', { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'quick', body: 'quick', sender_key: 'k', session_id: 's', device_id: 'D' });
    // Carol's private room is not Alice's to search.
    const { room_id: secret } = await sdkClient(server.baseUrl, carol).createRoom({});
    await text(carol, secret, 'quick secret plans');

    const results = await aliceClient.searchRoomEvents({ term: 'quick' });
    expect(results.results.map((r) => r.context.getEvent().getId())).toEqual([thinking, fox]);
    expect(results.count).toBe(2);
    expect(results.highlights).toContain('quick');
    // Context and profiles come along (the SDK asks for one event either side and profiles).
    const ctx = results.results[1]!.context;
    expect(ctx.getTimeline().length).toBeGreaterThan(1);

    const carolSees = await search(carol, { search_term: 'quick' });
    expect(carolSees.status).toBe(200);
    expect(carolSees.body.search_categories.room_events.count).toBe(1);
    expect(ids(carolSees)).toHaveLength(1);
  });

  it('hides history from before a join under history_visibility joined, and redacted events', async () => {
    const { room_id } = await aliceClient.createRoom({
      preset: 'public_chat' as never,
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
    });
    await text(alice, room_id, 'zeppelin before bob');
    await bobClient.joinRoom(room_id);
    const after = await text(alice, room_id, 'zeppelin after bob');
    const gone = await text(alice, room_id, 'zeppelin to be redacted');
    expect(ids(await search(alice, { search_term: 'zeppelin', order_by: 'recent' }))).toHaveLength(3);
    await aliceClient.redactEvent(room_id, gone);
    const forBob = await search(bob, { search_term: 'zeppelin', order_by: 'recent' });
    expect(ids(forBob)).toEqual([after]);
    expect(forBob.body.search_categories.room_events.count).toBe(1);
    expect(ids(await search(alice, { search_term: 'zeppelin', order_by: 'recent' }))).toHaveLength(2);
  });

  it('orders by rank and paginates with next_batch in both orders', async () => {
    const { room_id } = await aliceClient.createRoom({});
    const sent: string[] = [];
    for (let i = 0; i < 7; i++) sent.push(await text(alice, room_id, `pagetest number ${i} with some other words around it`));
    const dense = await text(alice, room_id, 'pagetest pagetest pagetest');

    const ranked = await search(alice, { search_term: 'pagetest', order_by: 'rank', filter: { rooms: [room_id], limit: 50 } });
    const rankedResults = ranked.body.search_categories.room_events.results as Array<{ rank: number; result: { event_id: string } }>;
    expect(rankedResults[0]!.result.event_id).toBe(dense);
    for (let i = 1; i < rankedResults.length; i++) expect(rankedResults[i - 1]!.rank).toBeGreaterThanOrEqual(rankedResults[i]!.rank);

    const all = [...sent, dense];
    for (const order of ['recent', 'rank'] as const) {
      const seen: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const res = await search(alice, { search_term: 'pagetest', order_by: order, filter: { rooms: [room_id], limit: 3 } }, token);
        expect(res.status).toBe(200);
        seen.push(...ids(res));
        token = res.body.search_categories.room_events.next_batch;
        pages++;
      } while (token && pages < 10);
      expect(pages).toBe(3);
      expect([...seen].sort()).toEqual([...all].sort());
      if (order === 'recent') expect(seen).toEqual([...all].reverse());
    }
    const bad = await search(alice, { search_term: 'pagetest' }, 'garbage');
    expect(bad.status).toBe(400);
  });

  it('searches names and topics by key, filters by sender, and returns context, profiles, state and groups', async () => {
    const byName = await search(alice, { search_term: 'garden', keys: ['content.name'] });
    expect(byName.body.search_categories.room_events.results.map((r: any) => r.result.type)).toEqual(['m.room.name']);
    const byTopic = await search(alice, { search_term: 'hedgehogs', keys: ['content.topic'] });
    expect(byTopic.body.search_categories.room_events.results.map((r: any) => r.result.type)).toEqual(['m.room.topic']);
    expect(ids(await search(alice, { search_term: 'hedgehogs', keys: ['content.body'] }))).toEqual([]);

    const fromBob = await search(alice, { search_term: 'day', filter: { senders: [bob.userId] }, order_by: 'recent' });
    expect(fromBob.body.search_categories.room_events.results.every((r: any) => r.result.sender === bob.userId)).toBe(true);
    expect(ids(fromBob)).toHaveLength(2);

    const rich = await search(alice, {
      search_term: 'thinking',
      event_context: { before_limit: 2, after_limit: 1, include_profile: true },
      include_state: true,
      groupings: { group_by: [{ key: 'room_id' }, { key: 'sender' }] },
    });
    expect(rich.status).toBe(200);
    const roomEvents = rich.body.search_categories.room_events;
    const result = roomEvents.results[0];
    expect(result.context.events_before).toHaveLength(2);
    expect(result.context.events_after).toHaveLength(1);
    expect(result.context.profile_info[bob.userId]).toEqual({ displayname: 'bob' });
    expect(roomEvents.state[roomId].some((e: any) => e.type === 'm.room.create')).toBe(true);
    expect(roomEvents.groups.room_id[roomId].results).toEqual([result.result.event_id]);
    expect(roomEvents.groups.sender[bob.userId].results).toEqual([result.result.event_id]);

    const nothing = await search(alice, { search_term: '!!!' });
    expect(nothing.body.search_categories.room_events).toMatchObject({ count: 0, results: [] });
  });
});
