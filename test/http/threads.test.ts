import { Direction, FeatureSupport, Thread, ThreadFilterType, type MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

const enc = encodeURIComponent;

describe.each(testDialects())('threads on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let aliceClient: MatrixClient;
  let roomId: string;
  let rootA: string;
  let rootB: string;
  let lastReplyA: string;

  const send = async (user: TestUser, type: string, content: Record<string, unknown>): Promise<string> => {
    const res = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/${enc(type)}/${Math.random().toString(36).slice(2)}`, {
      token: user.accessToken,
      body: content,
    });
    expect(res.status).toBe(200);
    return res.body.event_id;
  };
  const threadReply = (root: string, body: string, inReplyTo = root) => ({
    msgtype: 'm.text',
    body,
    'm.relates_to': { rel_type: 'm.thread', event_id: root, is_falling_back: true, 'm.in_reply_to': { event_id: inReplyTo } },
  });
  const threads = (user: TestUser, query = '') => request(server.baseUrl, 'GET', `/_matrix/client/v1/rooms/${enc(roomId)}/threads${query ? `?${query}` : ''}`, { token: user.accessToken });

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
    aliceClient = sdkClient(server.baseUrl, alice);
    roomId = (await aliceClient.createRoom({ preset: 'public_chat' as never })).room_id;
    await sdkClient(server.baseUrl, bob).joinRoom(roomId);
    await sdkClient(server.baseUrl, carol).joinRoom(roomId);
    rootA = await send(alice, 'm.room.message', { msgtype: 'm.text', body: 'thread A' });
    rootB = await send(bob, 'm.room.message', { msgtype: 'm.text', body: 'thread B' });
    await send(bob, 'm.room.message', threadReply(rootA, 'a1'));
    await send(alice, 'm.room.message', threadReply(rootB, 'b1'));
    await send(alice, 'm.room.message', { msgtype: 'm.text', body: 'main timeline' });
    lastReplyA = await send(bob, 'm.room.message', threadReply(rootA, 'a2'));
  });
  afterAll(async () => {
    await server?.close();
  });

  it('lists thread roots by latest activity with their summaries', async () => {
    const res = await threads(carol);
    expect(res.status).toBe(200);
    expect(res.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([rootA, rootB]);
    const summaryA = res.body.chunk[0].unsigned['m.relations']['m.thread'];
    expect(summaryA.count).toBe(2);
    expect(summaryA.latest_event.event_id).toBe(lastReplyA);
    expect(summaryA.latest_event.content.body).toBe('a2');
    expect(summaryA.current_user_participated).toBe(false);
    expect(res.body.next_batch).toBeUndefined();

    // Alice sent root A and replied in B; Bob replied in A and sent root B.
    const forAlice = await threads(alice);
    expect(forAlice.body.chunk.map((e: any) => e.unsigned['m.relations']['m.thread'].current_user_participated)).toEqual([true, true]);
  });

  it('filters to threads the user participated in', async () => {
    const rootC = await send(carol, 'm.room.message', { msgtype: 'm.text', body: 'thread C' });
    await send(alice, 'm.room.message', threadReply(rootC, 'c1'));
    const forBob = await threads(bob, 'include=participated');
    expect(forBob.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([rootA, rootB]);
    const forCarol = await threads(carol, 'include=participated');
    expect(forCarol.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([rootC]);
    expect(forCarol.body.chunk[0].unsigned['m.relations']['m.thread'].current_user_participated).toBe(true);
    const forAlice = await threads(alice, 'include=participated');
    expect(forAlice.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([rootC, rootA, rootB]);
  });

  it('paginates the thread list', async () => {
    const p1 = await threads(alice, 'limit=2');
    expect(p1.body.chunk).toHaveLength(2);
    expect(p1.body.next_batch).toEqual(expect.any(String));
    const p2 = await threads(alice, `limit=2&from=${enc(p1.body.next_batch)}`);
    expect(p2.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([rootB]);
    expect(p2.body.next_batch).toBeUndefined();
    const bad = await threads(alice, 'from=garbage');
    expect(bad.status).toBe(400);
    expect(bad.body.errcode).toBe('M_INVALID_PARAM');
  });

  it('serves the thread list and thread timeline to matrix-js-sdk, with the summary in /messages and an edited latest event', async () => {
    // A started client learns this from /versions (v1.4+); /versions does not list v1.4 yet, so say it here.
    Thread.setServerSideListSupport(FeatureSupport.Stable);
    Thread.setServerSideFwdPaginationSupport(FeatureSupport.Stable);
    const list = await aliceClient.createThreadListMessagesRequest(roomId, null, 10, Direction.Backward, ThreadFilterType.All);
    expect(list.chunk.map((e) => e.event_id)).toContain(rootA);

    const edit = await send(bob, 'm.room.message', {
      msgtype: 'm.text',
      body: '* a2 edited',
      'm.new_content': { msgtype: 'm.text', body: 'a2 edited' },
      'm.relates_to': { rel_type: 'm.replace', event_id: lastReplyA },
    });
    const timeline = await aliceClient.relations(roomId, rootA, 'm.thread', null, { dir: Direction.Forward, limit: 10 });
    // The server keeps the original content; the SDK applies the bundled m.replace itself.
    expect(timeline.events.map((e) => e.getOriginalContent().body)).toEqual(['a1', 'a2']);
    expect(timeline.events.map((e) => e.getContent().body)).toEqual(['a1', 'a2 edited']);

    const messages = await aliceClient.createMessagesRequest(roomId, null, 50, Direction.Backward);
    const root = messages.chunk.find((e) => e.event_id === rootA)!;
    const summary = (root.unsigned as any)['m.relations']['m.thread'];
    expect(summary.count).toBe(2);
    expect(summary.latest_event.content.body).toBe('a2');
    expect(summary.latest_event.unsigned['m.relations']['m.replace'].event_id).toBe(edit);
  });

  it('refuses the thread list of a room the user cannot see', async () => {
    const dave = await registerUser(server.baseUrl, 'dave');
    const { room_id } = await sdkClient(server.baseUrl, dave).createRoom({});
    const res = await request(server.baseUrl, 'GET', `/_matrix/client/v1/rooms/${enc(room_id)}/threads`, { token: alice.accessToken });
    expect(res.status).toBe(403);
  });
});
