import { Direction, type MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const enc = encodeURIComponent;

describe.each(testDialects())('relations and bundled aggregations on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let aliceClient: MatrixClient;
  let bobClient: MatrixClient;

  const send = async (user: TestUser, roomId: string, type: string, content: Record<string, unknown>): Promise<string> => {
    const res = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/${enc(type)}/${Math.random().toString(36).slice(2)}`, {
      token: user.accessToken,
      body: content,
    });
    expect(res.status).toBe(200);
    return res.body.event_id;
  };
  const get = (user: TestUser, path: string) => request(server.baseUrl, 'GET', path, { token: user.accessToken });
  const relationsOf = (user: TestUser, roomId: string, eventId: string, suffix = '', query = '') =>
    get(user, `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(eventId)}${suffix}${query ? `?${query}` : ''}`);
  const edit = (original: string, body: string) => ({
    msgtype: 'm.text',
    body: `* ${body}`,
    'm.new_content': { msgtype: 'm.text', body },
    'm.relates_to': { rel_type: 'm.replace', event_id: original },
  });

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
    aliceClient = sdkClient(server.baseUrl, alice);
    bobClient = sdkClient(server.baseUrl, bob);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('bundles the latest valid edit on /event, /messages, /context and /sync, keeping the original content', async () => {
    const { room_id } = await aliceClient.createRoom({ preset: 'public_chat' as never });
    await bobClient.joinRoom(room_id);
    const original = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'hello' });
    const first = await send(alice, room_id, 'm.room.message', edit(original, 'hello v2'));
    await sleep(5);
    // Not valid replacements: another sender, no m.new_content, another event type.
    await send(bob, room_id, 'm.room.message', edit(original, 'bob was here'));
    await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: '* nope', 'm.relates_to': { rel_type: 'm.replace', event_id: original } });
    await send(alice, room_id, 'org.example.other', edit(original, 'other type'));
    await sleep(5);
    const latest = await send(alice, room_id, 'm.room.message', edit(original, 'hello v3'));
    await sleep(5);
    // An edit of an edit is ignored for the edit itself.
    const editOfEdit = await send(alice, room_id, 'm.room.message', edit(latest, 'edit of edit'));

    const ev = await get(alice, `/_matrix/client/v3/rooms/${enc(room_id)}/event/${enc(original)}`);
    expect(ev.status).toBe(200);
    expect(ev.body.content.body).toBe('hello');
    const bundled = ev.body.unsigned['m.relations']['m.replace'];
    expect(bundled.event_id).toBe(latest);
    expect(bundled.content['m.new_content'].body).toBe('hello v3');
    expect(bundled.sender).toBe(alice.userId);
    expect(ev.body.unsigned['m.relations']['m.annotation']).toBeUndefined();

    const messages = await aliceClient.createMessagesRequest(room_id, null, 20, Direction.Backward);
    const inMessages = messages.chunk.find((e) => e.event_id === original)!;
    expect(inMessages.content.body).toBe('hello');
    expect((inMessages.unsigned as any)['m.relations']['m.replace'].event_id).toBe(latest);
    const latestInMessages = messages.chunk.find((e) => e.event_id === latest)!;
    expect((latestInMessages.unsigned as any)?.['m.relations']).toBeUndefined();
    expect(messages.chunk.find((e) => e.event_id === first)).toBeDefined();
    expect(messages.chunk.find((e) => e.event_id === editOfEdit)).toBeDefined();

    const ctx = await get(bob, `/_matrix/client/v3/rooms/${enc(room_id)}/context/${enc(original)}?limit=2`);
    expect(ctx.body.event.unsigned['m.relations']['m.replace'].event_id).toBe(latest);

    const filter = JSON.stringify({ room: { rooms: [room_id], timeline: { limit: 30 } } });
    const sync = await get(bob, `/_matrix/client/v3/sync?filter=${enc(filter)}`);
    const timeline = sync.body.rooms.join[room_id].timeline.events as Array<{ event_id: string; unsigned?: any; content: any }>;
    const inSync = timeline.find((e) => e.event_id === original)!;
    expect(inSync.content.body).toBe('hello');
    expect(inSync.unsigned['m.relations']['m.replace'].event_id).toBe(latest);
    expect(inSync.unsigned['m.relations']['m.replace'].room_id).toBeUndefined();
  });

  it('bundles references, not annotations, and drops redacted children', async () => {
    const { room_id } = await aliceClient.createRoom({ preset: 'public_chat' as never });
    await bobClient.joinRoom(room_id);
    const parent = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'poll' });
    const ref1 = await send(bob, room_id, 'm.room.message', { msgtype: 'm.text', body: 'see', 'm.relates_to': { rel_type: 'm.reference', event_id: parent } });
    const ref2 = await send(alice, room_id, 'org.example.ref', { 'm.relates_to': { rel_type: 'm.reference', event_id: parent } });
    await send(bob, room_id, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: parent, key: '👍' } });

    const ev = await get(alice, `/_matrix/client/v3/rooms/${enc(room_id)}/event/${enc(parent)}`);
    expect(ev.body.unsigned['m.relations']).toEqual({ 'm.reference': { chunk: [{ event_id: ref1 }, { event_id: ref2 }] } });

    await bobClient.redactEvent(room_id, ref1);
    const after = await get(alice, `/_matrix/client/v3/rooms/${enc(room_id)}/event/${enc(parent)}`);
    expect(after.body.unsigned['m.relations']).toEqual({ 'm.reference': { chunk: [{ event_id: ref2 }] } });
    const rels = await relationsOf(alice, room_id, parent);
    expect(rels.body.chunk.map((e: { event_id: string }) => e.event_id)).not.toContain(ref1);
    expect(rels.body.chunk).toHaveLength(2);
  });

  it('paginates relations both ways and filters by relation and event type', async () => {
    const { room_id } = await aliceClient.createRoom({ preset: 'public_chat' as never });
    await bobClient.joinRoom(room_id);
    const parent = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'react to me' });
    const children: string[] = [];
    for (let i = 0; i < 5; i++) {
      children.push(await send(i % 2 ? bob : alice, room_id, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: parent, key: `k${i}` } }));
      await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: `noise ${i}` });
    }
    children.push(await send(bob, room_id, 'm.room.message', { msgtype: 'm.text', body: 'ref', 'm.relates_to': { rel_type: 'm.reference', event_id: parent } }));
    children.push(await send(alice, room_id, 'm.reaction', { 'm.relates_to': { rel_type: 'm.reference', event_id: parent } }));

    const ids = (r: { body: { chunk: Array<{ event_id: string }> } }) => r.body.chunk.map((e) => e.event_id);
    const newestFirst = [...children].reverse();
    const p1 = await relationsOf(alice, room_id, parent, '', 'limit=3');
    expect(ids(p1)).toEqual(newestFirst.slice(0, 3));
    expect(p1.body.next_batch).toEqual(expect.any(String));
    expect(p1.body.prev_batch).toBeUndefined();
    const p2 = await relationsOf(alice, room_id, parent, '', `limit=3&from=${enc(p1.body.next_batch)}`);
    expect(ids(p2)).toEqual(newestFirst.slice(3, 6));
    expect(p2.body.prev_batch).toBe(p1.body.next_batch);
    const p3 = await relationsOf(alice, room_id, parent, '', `limit=3&from=${enc(p2.body.next_batch)}`);
    expect(ids(p3)).toEqual(newestFirst.slice(6));
    expect(p3.body.next_batch).toBeUndefined();

    const f1 = await relationsOf(alice, room_id, parent, '', 'dir=f&limit=4');
    expect(ids(f1)).toEqual(children.slice(0, 4));
    const f2 = await relationsOf(alice, room_id, parent, '', `dir=f&limit=4&from=${enc(f1.body.next_batch)}`);
    expect(ids(f2)).toEqual(children.slice(4));
    expect(f2.body.next_batch).toBeUndefined();

    // `to` bounds the range: from page 1's start to page 2's start is exactly page 1.
    const bounded = await relationsOf(alice, room_id, parent, '', `limit=10&to=${enc(p1.body.next_batch)}`);
    expect(ids(bounded)).toEqual(newestFirst.slice(0, 3));

    expect(ids(await relationsOf(alice, room_id, parent, '/m.annotation'))).toEqual(children.slice(0, 5).reverse());
    expect(ids(await relationsOf(alice, room_id, parent, '/m.reference'))).toEqual([children[6], children[5]]);
    expect(ids(await relationsOf(alice, room_id, parent, '/m.reference/m.reaction'))).toEqual([children[6]]);
    expect(ids(await relationsOf(alice, room_id, parent, '/m.annotation/m.room.message'))).toEqual([]);

    const viaSdk = await bobClient.relations(room_id, parent, 'm.annotation', 'm.reaction', { dir: Direction.Backward, limit: 2 });
    expect(viaSdk.originalEvent?.getId()).toBe(parent);
    expect(viaSdk.events.map((e) => e.getId())).toEqual([children[4], children[3]]);
    expect(viaSdk.nextBatch).toEqual(expect.any(String));
    const more = await bobClient.relations(room_id, parent, 'm.annotation', 'm.reaction', { dir: Direction.Backward, limit: 5, from: viaSdk.nextBatch! });
    expect(more.events.map((e) => e.getId())).toEqual([children[2], children[1], children[0]]);
    expect(more.nextBatch).toBeNull();

    // A /messages token works as `from` too.
    const page = await aliceClient.createMessagesRequest(room_id, null, 2, Direction.Backward);
    const fromMessages = await relationsOf(alice, room_id, parent, '', `from=${enc(page.end!)}`);
    // The two newest room events are the two references, so the page ends just before children[5].
    expect(ids(fromMessages)).toEqual(newestFirst.slice(2));
  });

  it('recurses into relations of relations when asked', async () => {
    const { room_id } = await aliceClient.createRoom({});
    const root = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'root' });
    const reply = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'reply', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
    const reaction = await send(alice, room_id, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation', event_id: reply, key: 'x' } });
    const flat = await relationsOf(alice, room_id, root);
    expect(flat.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([reply]);
    expect(flat.body.recursion_depth).toBeUndefined();
    const deep = await relationsOf(alice, room_id, root, '', 'recurse=true');
    expect(deep.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([reaction, reply]);
    expect(deep.body.recursion_depth).toBe(3);
    const annotations = await relationsOf(alice, room_id, root, '/m.annotation', 'recurse=true');
    expect(annotations.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([reaction]);
    const notRecursing = await relationsOf(alice, room_id, root, '', 'recurse=false');
    expect(notRecursing.body.recursion_depth).toBe(1);
  });

  it('answers 404 for parents the user cannot see and hides children from after they left', async () => {
    const { room_id } = await aliceClient.createRoom({
      preset: 'public_chat' as never,
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
    });
    const before = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'before bob' });
    const outsider = await relationsOf(carol, room_id, before);
    expect(outsider.status).toBe(404);
    expect(outsider.body.errcode).toBe('M_NOT_FOUND');
    const unknown = await relationsOf(alice, room_id, '$nope');
    expect(unknown.status).toBe(404);

    await bobClient.joinRoom(room_id);
    const hidden = await relationsOf(bob, room_id, before);
    expect(hidden.status).toBe(404);

    const parent = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'while bob is here' });
    const seen = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'r1', 'm.relates_to': { rel_type: 'm.reference', event_id: parent } });
    await bobClient.leave(room_id);
    const unseen = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'r2', 'm.relates_to': { rel_type: 'm.reference', event_id: parent } });

    const forBob = await relationsOf(bob, room_id, parent);
    expect(forBob.status).toBe(200);
    expect(forBob.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([seen]);
    const forAlice = await relationsOf(alice, room_id, parent);
    expect(forAlice.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([unseen, seen]);
    const bobsView = await get(bob, `/_matrix/client/v3/rooms/${enc(room_id)}/event/${enc(parent)}`);
    expect(bobsView.body.unsigned['m.relations']).toEqual({ 'm.reference': { chunk: [{ event_id: seen }] } });
  });

  it('indexes relations that committed while the indexer was not running (restart backfill)', async () => {
    const { room_id } = await aliceClient.createRoom({});
    const parent = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'parent' });
    const child = await send(alice, room_id, 'm.room.message', { msgtype: 'm.text', body: 'c', 'm.relates_to': { rel_type: 'm.reference', event_id: parent } });
    // Simulate a crash between the event commit and the index write.
    const db = server.hs.services.db.knex;
    await server.hs.services.relations.indexer.idle();
    await db('event_relations').where('event_id', child).delete();
    await db('event_index_position').update({ stream_ordering: 0 });
    server = await server.restart();
    aliceClient = sdkClient(server.baseUrl, alice);
    bobClient = sdkClient(server.baseUrl, bob);
    const rels = await relationsOf(alice, room_id, parent);
    expect(rels.body.chunk.map((e: { event_id: string }) => e.event_id)).toEqual([child]);
  });
});
