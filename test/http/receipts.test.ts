import { MatrixEvent, ReceiptType, type MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPositions } from '../../src/storage/repositories/receipts.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('receipts and read markers on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let aliceSdk: MatrixClient;
  let txn = 0;

  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });

  async function sync(user: TestUser, params: Record<string, string | number> = {}): Promise<Json> {
    const qs = Object.entries(params)
      .map(([k, v]) => `${k}=${enc(String(v))}`)
      .join('&');
    const res = await api(user, 'GET', `/sync${qs ? `?${qs}` : ''}`);
    if (res.status !== 200) throw new Error(`sync failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async function send(user: TestUser, roomId: string, body: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body, ...extra });
    if (res.status !== 200) throw new Error(`send failed: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.event_id;
  }

  async function sharedRoom(): Promise<string> {
    const res = await api(alice, 'POST', '/createRoom', { preset: 'public_chat' });
    const roomId = res.body.room_id as string;
    expect((await api(bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    return roomId;
  }

  const receipt = (user: TestUser, roomId: string, type: string, eventId: string, body: Record<string, unknown> = {}) =>
    api(user, 'POST', `/rooms/${enc(roomId)}/receipt/${type}/${enc(eventId)}`, body);

  const receiptContent = (res: Json, roomId: string): Json => {
    const events = res.rooms.join[roomId]?.ephemeral.events ?? [];
    const receipts = events.filter((e: Json) => e.type === 'm.receipt');
    expect(receipts.length).toBeLessThanOrEqual(1);
    return receipts[0]?.content;
  };

  const sdkEvent = (roomId: string, eventId: string) => new MatrixEvent({ event_id: eventId, room_id: roomId, type: 'm.room.message', sender: bob.userId });

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    carol = await registerUser(server.baseUrl, 'carol');
    aliceSdk = sdkClient(server.baseUrl, alice);
  });
  afterAll(async () => {
    aliceSdk?.stopClient();
    await server?.close();
  });

  it('shows a read receipt in the other member’s sync (incremental and initial)', async () => {
    const roomId = await sharedRoom();
    const eventId = await send(bob, roomId, 'read me');
    const base = await sync(bob);
    await aliceSdk.sendReadReceipt(sdkEvent(roomId, eventId));

    const next = await sync(bob, { since: base.next_batch, timeout: 5000 });
    const content = receiptContent(next, roomId);
    expect(Object.keys(content)).toEqual([eventId]);
    expect(content[eventId]['m.read'][alice.userId].ts).toBeTypeOf('number');
    expect(content[eventId]['m.read'][alice.userId].thread_id).toBeUndefined();

    const initial = await sync(bob);
    expect(receiptContent(initial, roomId)[eventId]['m.read']).toHaveProperty(alice.userId);
  });

  it('shows a private receipt to its owner only', async () => {
    const roomId = await sharedRoom();
    const eventId = await send(bob, roomId, 'secretly read');
    const bobBase = await sync(bob);
    const aliceBase = await sync(alice);
    await aliceSdk.sendReadReceipt(sdkEvent(roomId, eventId), ReceiptType.ReadPrivate);

    const own = await sync(alice, { since: aliceBase.next_batch, timeout: 5000 });
    expect(receiptContent(own, roomId)[eventId]['m.read.private'][alice.userId].ts).toBeTypeOf('number');

    const other = await sync(bob, { since: bobBase.next_batch, timeout: 0 });
    expect(receiptContent(other, roomId)).toBeUndefined();
    const otherInitial = await sync(bob);
    expect(JSON.stringify(receiptContent(otherInitial, roomId) ?? {})).not.toContain('m.read.private');
  });

  it('keeps threaded receipts as separate entries and never moves a receipt backwards', async () => {
    const roomId = await sharedRoom();
    const root = await send(bob, roomId, 'thread root');
    const inThread = await send(bob, roomId, 'in thread', { 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
    const main1 = await send(bob, roomId, 'main 1');
    const main2 = await send(bob, roomId, 'main 2');

    expect((await receipt(alice, roomId, 'm.read', main1, { thread_id: 'main' })).status).toBe(200);
    expect((await receipt(alice, roomId, 'm.read', inThread, { thread_id: root })).status).toBe(200);
    let content = receiptContent(await sync(bob), roomId);
    expect(content[main1]['m.read'][alice.userId].thread_id).toBe('main');
    expect(content[inThread]['m.read'][alice.userId].thread_id).toBe(root);

    // A newer main-timeline receipt replaces the older one and leaves the thread's alone.
    expect((await receipt(alice, roomId, 'm.read', main2, { thread_id: 'main' })).status).toBe(200);
    // An older one is accepted but changes nothing.
    expect((await receipt(alice, roomId, 'm.read', main1, { thread_id: 'main' })).status).toBe(200);
    content = receiptContent(await sync(bob), roomId);
    expect(content[main1]).toBeUndefined();
    expect(content[main2]['m.read'][alice.userId].thread_id).toBe('main');
    expect(content[inThread]['m.read'][alice.userId].thread_id).toBe(root);
  });

  it('rejects receipts for unknown events, by non-members and with bad thread ids', async () => {
    const roomId = await sharedRoom();
    const eventId = await send(bob, roomId, 'x');
    const other = await api(alice, 'POST', '/createRoom', {});
    const elsewhere = await send(alice, other.body.room_id, 'elsewhere');

    const unknown = await receipt(alice, roomId, 'm.read', '$nope:localhost');
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_NOT_FOUND');
    expect((await receipt(bob, roomId, 'm.read', elsewhere)).status).toBe(404);
    const stranger = await receipt(carol, roomId, 'm.read', eventId);
    expect(stranger.status).toBe(403);
    expect(stranger.body.errcode).toBe('M_FORBIDDEN');
    const badType = await receipt(alice, roomId, 'm.bogus', eventId);
    expect(badType.status).toBe(400);
    for (const thread_id of ['', 42, 'not-an-event']) {
      const res = await receipt(alice, roomId, 'm.read', eventId, { thread_id });
      expect(res.status).toBe(400);
      expect(res.body.errcode).toBe('M_INVALID_PARAM');
    }
    const fullyReadThread = await receipt(alice, roomId, 'm.fully_read', eventId, { thread_id: 'main' });
    expect(fullyReadThread.status).toBe(400);
    expect(fullyReadThread.body.errcode).toBe('M_INVALID_PARAM');
  });

  it('sets the m.fully_read marker through /read_markers and the receipt endpoint', async () => {
    const roomId = await sharedRoom();
    const first = await send(bob, roomId, 'one');
    const second = await send(bob, roomId, 'two');
    const base = await sync(alice);

    const res = await api(alice, 'POST', `/rooms/${enc(roomId)}/read_markers`, { 'm.fully_read': first, 'm.read': second });
    expect(res.status).toBe(200);
    const marker = await api(alice, 'GET', `/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/m.fully_read`);
    expect(marker.body).toEqual({ event_id: first });

    const next = await sync(alice, { since: base.next_batch, timeout: 5000 });
    const room = next.rooms.join[roomId];
    expect(room.account_data.events).toContainEqual({ type: 'm.fully_read', content: { event_id: first } });
    expect(receiptContent(next, roomId)[second]['m.read']).toHaveProperty(alice.userId);

    // m.fully_read through the receipt endpoint is the read marker, not a receipt.
    const bobBase = await sync(bob);
    expect((await receipt(alice, roomId, 'm.fully_read', second)).status).toBe(200);
    expect((await api(alice, 'GET', `/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/m.fully_read`)).body).toEqual({ event_id: second });
    const bobNext = await sync(bob, { since: bobBase.next_batch, timeout: 0 });
    expect(receiptContent(bobNext, roomId)).toBeUndefined();

    // The marker never moves back to an older event.
    expect((await api(alice, 'POST', `/rooms/${enc(roomId)}/read_markers`, { 'm.fully_read': first })).status).toBe(200);
    expect((await api(alice, 'GET', `/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/m.fully_read`)).body).toEqual({ event_id: second });

    const missing = await api(alice, 'POST', `/rooms/${enc(roomId)}/read_markers`, { 'm.fully_read': '$missing:localhost' });
    expect(missing.status).toBe(404);
    const stranger = await api(carol, 'POST', `/rooms/${enc(roomId)}/read_markers`, { 'm.fully_read': first });
    expect(stranger.status).toBe(403);
  });

  it('drops the unread notification count after a read receipt', async () => {
    const roomId = await sharedRoom();
    const base = await sync(alice);
    const first = await send(bob, roomId, 'unread 1');
    await send(bob, roomId, 'unread 2');
    const last = await send(bob, roomId, 'unread 3');

    const unread = await sync(alice, { since: base.next_batch, timeout: 5000 });
    expect(unread.rooms.join[roomId].unread_notifications.notification_count).toBe(3);

    await aliceSdk.sendReadReceipt(sdkEvent(roomId, first));
    const partly = await sync(alice, { since: unread.next_batch, timeout: 5000 });
    expect(partly.rooms.join[roomId].unread_notifications.notification_count).toBe(2);

    // A private receipt clears notifications too.
    await aliceSdk.sendReadReceipt(sdkEvent(roomId, last), ReceiptType.ReadPrivate);
    const read = await sync(alice, { since: partly.next_batch, timeout: 5000 });
    expect(read.rooms.join[roomId].unread_notifications.notification_count).toBe(0);
    expect((await sync(alice)).rooms.join[roomId].unread_notifications.notification_count).toBe(0);
    // The read position push counts can use: the receipted event's stream position.
    const { db, rooms } = server.hs.services;
    const lastEvent = await rooms.events.get(db.knex, last);
    expect(await readPositions(db.knex, alice.userId, [roomId])).toEqual(new Map([[roomId, lastEvent!.streamOrdering]]));

    // Bob's receipts change nothing for Alice's count, but the entry they create carries her real count.
    const more = await send(bob, roomId, 'unread 4');
    const afterMore = await sync(alice, { since: read.next_batch, timeout: 5000 });
    expect(afterMore.rooms.join[roomId].unread_notifications.notification_count).toBe(1);
    expect((await receipt(bob, roomId, 'm.read', more)).status).toBe(200);
    const bobRead = await sync(alice, { since: afterMore.next_batch, timeout: 5000 });
    expect(receiptContent(bobRead, roomId)[more]['m.read']).toHaveProperty(bob.userId);
    expect(bobRead.rooms.join[roomId].unread_notifications.notification_count).toBe(1);
  });
});
