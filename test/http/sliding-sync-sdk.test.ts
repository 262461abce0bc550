import { KnownMembership, RoomEvent, type MatrixClient, type MatrixEvent, type Room } from 'matrix-js-sdk';
import { SlidingSync, SlidingSyncEvent, SlidingSyncState, type MSC3575List, type MSC3575SlidingSyncResponse } from 'matrix-js-sdk/lib/sliding-sync.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createEncryptedRoom,
  joinEncryptedRoom,
  loginDevice,
  sendText,
  specViolations,
  startCryptoClient,
  startPrepared,
  stopClients,
  until,
  waitForDecrypted,
  waitForDevices,
  waitForRoom,
} from '../helpers/crypto.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

// matrix-js-sdk's SlidingSync client (MSC4186 mode) against a real Skjól: the SDK's Room objects are what a
// user of Element Web's sliding sync sees.

const REQUIRED_STATE = [
  ['m.room.create', ''],
  ['m.room.name', ''],
  ['m.room.encryption', ''],
  ['m.room.member', '$LAZY'],
  ['m.room.member', '$ME'],
];

function list(ranges: number[][], filters?: MSC3575List['filters']): MSC3575List {
  return { ranges, timeline_limit: 5, required_state: REQUIRED_STATE, ...(filters ? { filters } : {}) };
}

/** Every answer the SlidingSync client receives, and any request it failed. */
function recordAnswers(slidingSync: SlidingSync): { answers: MSC3575SlidingSyncResponse[]; errors: Error[] } {
  const out = { answers: [] as MSC3575SlidingSyncResponse[], errors: [] as Error[] };
  slidingSync.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
    if (state !== SlidingSyncState.RequestFinished) return;
    if (err) out.errors.push(err);
    else if (resp) out.answers.push(resp);
  });
  return out;
}

function messages(room: Room | null): string[] {
  return (room?.getLiveTimeline().getEvents() ?? []).filter((e) => e.getType() === 'm.room.message').map((e) => String(e.getContent().body));
}

describe.each(testDialects())('matrix-js-sdk sliding sync on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let txn = 0;
  const started: MatrixClient[] = [];
  const cryptoClients: MatrixClient[] = [];
  const enc = encodeURIComponent;
  const api = async (user: TestUser, method: string, path: string, body?: unknown): Promise<Json> => {
    const r = await request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const createRoom = async (user: TestUser, body: Record<string, unknown> = {}) => (await api(user, 'POST', '/createRoom', body)).room_id as string;
  const send = async (user: TestUser, roomId: string, body: string) =>
    (await api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body })).event_id as string;
  const join = (user: TestUser, roomId: string) => api(user, 'POST', `/join/${enc(roomId)}`, {});

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await stopClients(cryptoClients);
    for (const c of started) c.stopClient();
    await new Promise((r) => setTimeout(r, 100));
    await server?.close();
  });

  it('gives a user in 30+ rooms the right first window, live messages, subscriptions and range changes', async () => {
    // 20 plain rooms bob made and alice joined, 4 DMs, 3 invites, 3 encrypted rooms, a space with 3 children.
    const plain: string[] = [];
    for (let i = 0; i < 20; i++) {
      const id = await createRoom(bob, { name: `Plain ${i}`, preset: 'public_chat' });
      await join(alice, id);
      plain.push(id);
    }
    const dms: string[] = [];
    for (let i = 0; i < 4; i++) {
      const id = await createRoom(bob, { is_direct: true, invite: [alice.userId], preset: 'trusted_private_chat' });
      await join(alice, id);
      dms.push(id);
    }
    await api(alice, 'PUT', `/user/${enc(alice.userId)}/account_data/m.direct`, { [bob.userId]: dms });
    const invites: string[] = [];
    for (let i = 0; i < 3; i++) invites.push(await createRoom(bob, { name: `Invite ${i}`, invite: [alice.userId] }));
    const encrypted: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await createRoom(alice, {
        name: `Secret ${i}`,
        invite: [bob.userId],
        initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
      });
      await join(bob, id);
      encrypted.push(id);
    }
    const space = await createRoom(alice, { name: 'The Space', creation_content: { type: 'm.space' } });
    const children = plain.slice(0, 3);
    for (const child of children) await api(alice, 'PUT', `/rooms/${enc(space)}/state/m.space.child/${enc(child)}`, { via: [server.serverName] });

    // The last messages decide the order: these ten rooms are the newest, the first one on top.
    for (const id of plain) await send(bob, id, `hello ${id}`);
    const recent = [...plain.slice(10, 13), ...encrypted, ...dms].reverse();
    for (const id of [...recent].reverse()) await send(bob, id, `latest in ${id}`);
    const total = plain.length + dms.length + invites.length + encrypted.length + 1;
    expect(total).toBeGreaterThanOrEqual(31);

    const client = sdkClient(server.baseUrl, alice);
    started.push(client);
    const lists = new Map<string, MSC3575List>([
      ['all', list([[0, 9]])],
      ['dms', list([[0, 9]], { is_dm: true })],
      ['invites', list([[0, 9]], { is_invite: true })],
      ['space', list([[0, 9]], { spaces: [space] })],
    ]);
    const slidingSync = new SlidingSync(server.baseUrl, lists, { timeline_limit: 10, required_state: [['*', '*']] }, client, 10_000);
    const seen = recordAnswers(slidingSync);
    await startPrepared(client, { slidingSync }, 'alice on sliding sync');

    // Counts are the filtered totals, whatever the range.
    expect(slidingSync.getListData('all')!.joinedCount).toBe(total);
    expect(slidingSync.getListData('dms')!.joinedCount).toBe(4);
    expect(slidingSync.getListData('invites')!.joinedCount).toBe(3);
    expect(slidingSync.getListData('space')!.joinedCount).toBe(3);
    const first = seen.answers[0]!;
    expect((first.lists.all as Json).ops[0].room_ids).toEqual(recent);

    // The window: the ten newest rooms, every DM, every invite and the space's children, nothing else.
    const expected = new Set([...recent, ...dms, ...invites, ...children]);
    expect(new Set(client.getRooms().map((r) => r.roomId))).toEqual(expected);
    for (const id of [...plain.slice(10, 13), ...children]) {
      const room = client.getRoom(id)!;
      expect(room.name).toBe(`Plain ${plain.indexOf(id)}`);
      expect(room.getMyMembership()).toBe(KnownMembership.Join);
    }
    expect(messages(client.getRoom(plain[12]!))).toEqual([`hello ${plain[12]}`, `latest in ${plain[12]}`]);
    for (const id of dms) {
      const room = client.getRoom(id)!;
      expect(room.getMyMembership()).toBe(KnownMembership.Join);
      expect(room.name).toBe('bob'); // from the heroes: the other member's display name
      expect(messages(room).at(-1)).toBe(`latest in ${id}`);
    }
    for (const [i, id] of invites.entries()) {
      const room = client.getRoom(id)!;
      expect(room.getMyMembership()).toBe(KnownMembership.Invite);
      expect(room.name).toBe(`Invite ${i}`);
      expect(room.getLiveTimeline().getEvents().filter((e) => e.getType() === 'm.room.message')).toEqual([]);
    }
    for (const [i, id] of encrypted.entries()) {
      const room = client.getRoom(id)!;
      expect(room.name).toBe(`Secret ${i}`);
      expect(room.hasEncryptionStateEvent()).toBe(true);
      expect(room.getMyMembership()).toBe(KnownMembership.Join);
    }
    expect(client.getRoom(space)).toBeNull();

    // A new message from bob in a room of the window reaches the SDK as a Room.timeline event (five times, to print the spread).
    const target = plain[11]!;
    const latencies: string[] = [];
    for (let i = 0; i < 5; i++) {
      const body = `live ${i}`;
      const arrived = new Promise<{ event: MatrixEvent; at: number }>((resolve) => {
        const on = (event: MatrixEvent, room: Room | undefined, toStartOfTimeline: boolean | undefined) => {
          if (room?.roomId === target && !toStartOfTimeline && event.getContent().body === body) {
            client.off(RoomEvent.Timeline, on);
            resolve({ event, at: performance.now() });
          }
        };
        client.on(RoomEvent.Timeline, on);
      });
      await new Promise((r) => setTimeout(r, 100)); // the client is back in its long-poll
      const answered = new Promise<number>((resolve) => {
        const on = (state: SlidingSyncState, resp: MSC3575SlidingSyncResponse | null) => {
          if (state === SlidingSyncState.RequestFinished && resp?.rooms?.[target]) {
            slidingSync.off(SlidingSyncEvent.Lifecycle, on);
            resolve(performance.now());
          }
        };
        slidingSync.on(SlidingSyncEvent.Lifecycle, on);
      });
      const sentAt = performance.now();
      await send(bob, target, body);
      const sendDone = performance.now();
      const { event, at } = await arrived;
      latencies.push(`${(at - sentAt).toFixed(0)} (send answered ${(sendDone - sentAt).toFixed(0)}, sync answered ${((await answered) - sentAt).toFixed(0)})`);
      expect(event.getSender()).toBe(bob.userId);
      expect(messages(client.getRoom(target)).at(-1)).toBe(body);
    }
    console.log(`[${dialect}] sliding sync: send → SDK Room.timeline latencies in ms: ${latencies.join('; ')}`);

    // The SDK's other extensions: typing and receipts keyed by room, global and room account data.
    const liveRoom = client.getRoom(target)!;
    await api(bob, 'PUT', `/rooms/${enc(target)}/typing/${enc(bob.userId)}`, { typing: true, timeout: 30_000 });
    await until('bob typing', () => (liveRoom.getMember(bob.userId)?.typing ? true : undefined));
    const lastId = liveRoom.getLiveTimeline().getEvents().at(-1)!.getId()!;
    await api(bob, 'POST', `/rooms/${enc(target)}/receipt/m.read/${enc(lastId)}`, {});
    await until('bob\'s read receipt', () => (liveRoom.getEventReadUpTo(bob.userId) === lastId ? true : undefined));
    await api(alice, 'PUT', `/user/${enc(alice.userId)}/account_data/org.example.sliding`, { hello: 'sliding' });
    await until('global account data', () => (client.getAccountData('org.example.sliding' as never)?.getContent().hello === 'sliding' ? true : undefined));
    await api(alice, 'PUT', `/user/${enc(alice.userId)}/rooms/${enc(target)}/tags/u.work`, { order: 0.5 });
    await until('the room tag', () => (liveRoom.tags['u.work'] ? true : undefined));

    // A message in a room outside every window moves it in: the SDK learns the room with that message.
    const outside = plain[5]!;
    expect(client.getRoom(outside)).toBeNull();
    await send(bob, outside, 'wake up');
    const moved = await until('the room moved into the window', () => client.getRoom(outside) ?? undefined);
    expect(moved.name).toBe('Plain 5');
    expect(messages(moved).at(-1)).toBe('wake up');

    // A room subscription brings a room outside the windows with the subscription's state and timeline.
    const subscribed = plain[15]!;
    expect(client.getRoom(subscribed)).toBeNull();
    slidingSync.modifyRoomSubscriptions(new Set([subscribed]));
    const sub = await until('the subscribed room', () => client.getRoom(subscribed) ?? undefined);
    expect(sub.name).toBe('Plain 15');
    expect(sub.currentState.getStateEvents('m.room.join_rules', '')?.getContent().join_rule).toBe('public');
    expect(sub.getMember(bob.userId)?.membership).toBe(KnownMembership.Join);
    expect(messages(sub)).toEqual([`hello ${subscribed}`]);

    // Widening the range of "all" brings the next ten rooms.
    const before = seen.answers.length;
    slidingSync.setListRanges('all', [[0, 19]]);
    await until('the wider window', () => (seen.answers.slice(before).some((a) => (a.lists?.all as Json)?.ops?.[0]?.range?.[1] === 19) ? true : undefined));
    const wider = seen.answers.slice(before).find((a) => (a.lists?.all as Json)?.ops?.[0]?.range?.[1] === 19)!;
    const window: string[] = (wider.lists.all as Json).ops[0].room_ids;
    expect(window).toHaveLength(20);
    await until('the SDK to know the wider window', () => (window.every((id) => client.getRoom(id)) ? true : undefined));
    for (const id of window) {
      if (plain.includes(id)) expect(client.getRoom(id)!.name).toBe(`Plain ${plain.indexOf(id)}`);
    }
    expect(seen.errors).toEqual([]);
  });

  it('carries an E2EE conversation between Rust-crypto clients that sync only through sliding sync', async () => {
    const ana = await registerUser(server.baseUrl, 'ana');
    const ben = await registerUser(server.baseUrl, 'ben');
    const carol = await registerUser(server.baseUrl, 'carol');
    const slidingErrors: Error[] = [];
    // What Element Web asks for; the to_device, e2ee and other extensions are the SDK's own.
    const sliding = (client: MatrixClient) => {
      const ss = new SlidingSync(
        server.baseUrl,
        new Map([['all', { ranges: [[0, 19]], timeline_limit: 10, required_state: [['*', '*']] }]]),
        { timeline_limit: 10, required_state: [['*', '*']] },
        client,
        3_000,
      );
      ss.on(SlidingSyncEvent.Lifecycle, (_state, _resp, err) => err && slidingErrors.push(err));
      return ss;
    };
    // ana syncs only through sliding sync, ben through /sync: the two paths meet in one conversation.
    const anaClient = await startCryptoClient(server.baseUrl, ana, { slidingSync: sliding });
    cryptoClients.push(anaClient);
    const benClient = await startCryptoClient(server.baseUrl, ben);
    cryptoClients.push(benClient);
    const otkCount = async () => (await api(ana, 'POST', '/keys/upload', {})).one_time_key_counts?.signed_curve25519 ?? 0;
    const uploaded = await until('ana to upload one-time keys', async () => ((await otkCount()) > 0 ? otkCount() : undefined));

    const roomId = await createEncryptedRoom(anaClient, [ben.userId]);
    await joinEncryptedRoom(benClient, roomId);
    await waitForRoom(anaClient, roomId, [ana.userId, ben.userId]);

    // ben claims one of ana's one-time keys to send his room key to her over to_device.
    await sendText(benClient, roomId, 'hello from ben');
    await waitForDecrypted(anaClient, roomId, 'hello from ben');
    await sendText(anaClient, roomId, 'hello from ana');
    await waitForDecrypted(benClient, roomId, 'hello from ana');

    // A claimed key lowers the count the e2ee extension reports; the client uploads a replacement.
    await api(carol, 'POST', '/keys/claim', { one_time_keys: { [ana.userId]: { [ana.deviceId]: 'signed_curve25519' } } });
    const afterClaim = await otkCount();
    expect(afterClaim).toBeLessThan(uploaded);
    await until('ana to replace the claimed key', async () => ((await otkCount()) >= uploaded ? true : undefined), 30_000);

    // ben's new device (also on sliding sync) reaches ana through device_lists.changed; she encrypts for it.
    const ben2 = await loginDevice(server.baseUrl, ben);
    const ben2Client = await startCryptoClient(server.baseUrl, ben2, { slidingSync: sliding });
    cryptoClients.push(ben2Client);
    await waitForDevices(anaClient, ben.userId, [ben.deviceId, ben2.deviceId]);
    await waitForRoom(ben2Client, roomId, [ana.userId, ben.userId]);
    await sendText(anaClient, roomId, 'for both of your devices');
    await waitForDecrypted(ben2Client, roomId, 'for both of your devices');
    await waitForDecrypted(benClient, roomId, 'for both of your devices');
    await sendText(ben2Client, roomId, 'from the new device');
    await waitForDecrypted(anaClient, roomId, 'from the new device');

    expect(slidingErrors).toEqual([]);
    expect(specViolations).toEqual([]);
  });
});
