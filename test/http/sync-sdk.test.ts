import { ClientEvent, EventType, KnownMembership, RoomEvent, SyncState, type MatrixClient, type MatrixEvent, type Room } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

function waitFor<T>(setup: (resolve: (v: T) => void) => () => void, ms = 15_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cleanup: () => void = () => {};
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error('timed out'));
    }, ms);
    cleanup = setup((v) => {
      clearTimeout(timer);
      cleanup();
      resolve(v);
    });
  });
}

async function startSynced(client: MatrixClient, initialSyncLimit: number): Promise<void> {
  const prepared = waitFor<void>((resolve) => {
    const on = (state: SyncState) => {
      if (state === SyncState.Prepared) resolve();
    };
    client.on(ClientEvent.Sync, on);
    return () => client.off(ClientEvent.Sync, on);
  });
  await client.startClient({ initialSyncLimit });
  await prepared;
}

function nextTimelineEvent(client: MatrixClient, predicate: (e: MatrixEvent, room: Room | undefined) => boolean): Promise<MatrixEvent> {
  return waitFor<MatrixEvent>((resolve) => {
    const on = (e: MatrixEvent, room: Room | undefined) => {
      if (predicate(e, room)) resolve(e);
    };
    client.on(RoomEvent.Timeline, on);
    return () => client.off(RoomEvent.Timeline, on);
  });
}

function roomAppears(client: MatrixClient, roomId: string, membership: string): Promise<Room> {
  return waitFor<Room>((resolve) => {
    const check = () => {
      const room = client.getRoom(roomId);
      if (room && room.getMyMembership() === membership) resolve(room);
    };
    const timer = setInterval(check, 20);
    check();
    return () => clearInterval(timer);
  });
}

describe.each(testDialects())('matrix-js-sdk sync on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let aliceClient: MatrixClient;
  let bobClient: MatrixClient;
  const started: MatrixClient[] = [];

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    aliceClient = sdkClient(server.baseUrl, alice);
    bobClient = sdkClient(server.baseUrl, bob);
  });
  afterAll(async () => {
    for (const c of started) c.stopClient();
    await server?.close();
  });

  it('prepares, receives live events from another user, and scrolls back through history', async () => {
    const { room_id: roomId } = await aliceClient.createRoom({ name: 'SDK room', preset: 'public_chat' as never });
    await bobClient.joinRoom(roomId);
    for (let i = 0; i < 12; i++) await aliceClient.sendTextMessage(roomId, `old ${i}`);

    started.push(bobClient);
    await startSynced(bobClient, 5);
    const room = bobClient.getRoom(roomId)!;
    expect(room).toBeTruthy();
    expect(room.name).toBe('SDK room');
    expect(room.getMyMembership()).toBe(KnownMembership.Join);
    const live = () => room.getLiveTimeline().getEvents().filter((e) => e.getType() === EventType.RoomMessage).map((e) => e.getContent().body);
    expect(live()).toEqual(['old 7', 'old 8', 'old 9', 'old 10', 'old 11']);

    const arrived = nextTimelineEvent(bobClient, (e, r) => r?.roomId === roomId && e.getContent().body === 'live!');
    await aliceClient.sendTextMessage(roomId, 'live!');
    const event = await arrived;
    expect(event.getSender()).toBe(alice.userId);
    expect(live().at(-1)).toBe('live!');

    await bobClient.scrollback(room, 5);
    expect(live().slice(0, 5)).toEqual(['old 2', 'old 3', 'old 4', 'old 5', 'old 6']);
    await bobClient.scrollback(room, 30);
    expect(live()[0]).toBe('old 0');
    expect(room.getLiveTimeline().getEvents()[0]!.getType()).toBe(EventType.RoomCreate);
  });

  it('sees an invite arrive and the room join after accepting', async () => {
    const { room_id: roomId } = await aliceClient.createRoom({ name: 'Invite only', preset: 'private_chat' as never });
    await aliceClient.invite(roomId, bob.userId);
    const invited = await roomAppears(bobClient, roomId, KnownMembership.Invite);
    expect(invited.name).toBe('Invite only');
    await bobClient.joinRoom(roomId);
    const joined = await roomAppears(bobClient, roomId, KnownMembership.Join);
    await waitFor<void>((resolve) => {
      const t = setInterval(() => joined.currentState.getStateEvents(EventType.RoomCreate, '') && resolve(), 20);
      return () => clearInterval(t);
    });
    expect(joined.getJoinedMemberCount()).toBe(2);
  });

  it('delivers account data to a running client', async () => {
    const arrived = waitFor<MatrixEvent>((resolve) => {
      const on = (e: MatrixEvent) => {
        if (e.getType() === 'org.example.sdk') resolve(e);
      };
      bobClient.on(ClientEvent.AccountData, on);
      return () => bobClient.off(ClientEvent.AccountData, on);
    });
    await bobClient.setAccountData('org.example.sdk' as never, { hello: 'world' } as never);
    expect((await arrived).getContent()).toEqual({ hello: 'world' });
  });

  it('a lazy-loading client syncs and names the room from heroes', async () => {
    const { room_id: roomId } = await bobClient.createRoom({ preset: 'public_chat' as never });
    await aliceClient.joinRoom(roomId);
    await aliceClient.sendTextMessage(roomId, 'hi from alice');
    const carol = await registerUser(server.baseUrl, 'carol');
    const carolClient = sdkClient(server.baseUrl, carol);
    await carolClient.joinRoom(roomId);
    started.push(carolClient);
    const { Filter } = await import('matrix-js-sdk');
    const filter = new Filter(carol.userId);
    filter.setDefinition({ room: { state: { lazy_load_members: true }, timeline: { limit: 3 } } });
    const prepared = waitFor<void>((resolve) => {
      const on = (state: SyncState) => state === SyncState.Prepared && resolve();
      carolClient.on(ClientEvent.Sync, on);
      return () => carolClient.off(ClientEvent.Sync, on);
    });
    await carolClient.startClient({ filter, lazyLoadMembers: true });
    await prepared;
    const room = carolClient.getRoom(roomId)!;
    expect(room).toBeTruthy();
    expect(room.getJoinedMemberCount()).toBe(3);
    expect(room.name).toMatch(/alice|bob/);
  });
});
