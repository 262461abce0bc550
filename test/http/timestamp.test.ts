import { Direction, type MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const enc = encodeURIComponent;

describe.each(testDialects())('timestamp_to_event on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let aliceClient: MatrixClient;

  const lookup = (user: TestUser, roomId: string, ts: number, dir: string) =>
    request(server.baseUrl, 'GET', `/_matrix/client/v1/rooms/${enc(roomId)}/timestamp_to_event?ts=${ts}&dir=${dir}`, { token: user.accessToken });
  const tsOf = async (roomId: string, eventId: string): Promise<number> => (await aliceClient.fetchRoomEvent(roomId, eventId)).origin_server_ts!;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
    aliceClient = sdkClient(server.baseUrl, alice);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('finds the closest event in both directions, and 404 past the ends', async () => {
    const { room_id } = await aliceClient.createRoom({});
    await sleep(15);
    const m1 = (await aliceClient.sendTextMessage(room_id, 'one')).event_id;
    await sleep(15);
    const m2 = (await aliceClient.sendTextMessage(room_id, 'two')).event_id;
    await sleep(15);
    const m3 = (await aliceClient.sendTextMessage(room_id, 'three')).event_id;
    const [t1, t2, t3] = [await tsOf(room_id, m1), await tsOf(room_id, m2), await tsOf(room_id, m3)];

    expect((await lookup(alice, room_id, t2, 'f')).body).toEqual({ event_id: m2, origin_server_ts: t2 });
    expect((await lookup(alice, room_id, t2, 'b')).body).toEqual({ event_id: m2, origin_server_ts: t2 });
    expect((await lookup(alice, room_id, t2 + 1, 'f')).body.event_id).toBe(m3);
    expect((await lookup(alice, room_id, t2 - 1, 'b')).body.event_id).toBe(m1);
    expect((await lookup(alice, room_id, t3 + 60_000, 'b')).body.event_id).toBe(m3);

    const viaSdk = await aliceClient.timestampToEvent(room_id, t1 - 1, Direction.Backward);
    expect(viaSdk.event_id).not.toBe(m1);
    const forward = await aliceClient.timestampToEvent(room_id, t1 - 1, Direction.Forward);
    expect(forward).toEqual({ event_id: m1, origin_server_ts: t1 });

    const first = await lookup(alice, room_id, 0, 'f');
    const create = await aliceClient.fetchRoomEvent(room_id, first.body.event_id);
    expect(create.type).toBe('m.room.create');

    const none = await lookup(alice, room_id, t3 + 60_000, 'f');
    expect(none.status).toBe(404);
    expect(none.body.errcode).toBe('M_NOT_FOUND');
    expect((await lookup(alice, room_id, 1, 'b')).status).toBe(404);

    const bad = await lookup(alice, room_id, t1, 'x');
    expect(bad.status).toBe(400);
    const missing = await request(server.baseUrl, 'GET', `/_matrix/client/v1/rooms/${enc(room_id)}/timestamp_to_event?dir=f`, { token: alice.accessToken });
    expect(missing.status).toBe(400);
  });

  it('only answers with events the user may see', async () => {
    const { room_id } = await aliceClient.createRoom({
      preset: 'public_chat' as never,
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
    });
    const early = (await aliceClient.sendTextMessage(room_id, 'before bob')).event_id;
    const tEarly = await tsOf(room_id, early);
    await sleep(15);

    const outsider = await lookup(carol, room_id, tEarly, 'f');
    expect(outsider.status).toBe(403);

    await sdkClient(server.baseUrl, bob).joinRoom(room_id);
    await sleep(15);
    const later = (await aliceClient.sendTextMessage(room_id, 'after bob')).event_id;

    // Bob cannot see the message from before his join; backwards he gets an older event he may see (the
    // room's first events precede its history_visibility, so they are under the default `shared`).
    const backward = await lookup(bob, room_id, tEarly, 'b');
    expect(backward.status).toBe(200);
    expect(backward.body.event_id).not.toBe(early);
    expect((await aliceClient.fetchRoomEvent(room_id, backward.body.event_id)).type).not.toBe('m.room.message');
    // Forward from the hidden message skips it and lands on his own join.
    const forward = await lookup(bob, room_id, tEarly, 'f');
    expect(forward.status).toBe(200);
    const found = await aliceClient.fetchRoomEvent(room_id, forward.body.event_id);
    expect(found.type).toBe('m.room.member');
    expect(found.state_key).toBe(bob.userId);
    expect((await lookup(alice, room_id, tEarly, 'f')).body.event_id).toBe(early);
    expect((await lookup(bob, room_id, await tsOf(room_id, later), 'b')).body.event_id).toBe(later);
  });
});
