import { ClientEvent, KnownMembership, SyncState, type MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopClients, until } from '../helpers/crypto.js';
import { sdkClient, type TestUser } from '../helpers/users.js';
import { matrixUser, NETWORK, startBridgeFixture, type BridgeFixture } from './helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

// The everyday flows as a Matrix client sees them: matrix-js-sdk (no encryption) on one side, IRC on the other.
describe('IRC bridge seen from matrix-js-sdk', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let client: MatrixClient;
  let bob: IrcUser;
  let roomId: string;
  const ghost = (nick: string) => `@irc_${NETWORK}_${nick}:localhost`;
  const bodies = (room: string) => (client.getRoom(room)?.getLiveTimeline().getEvents() ?? []).filter((e) => e.getType() === 'm.room.message');
  const membership = (room: string, userId: string) => client.getRoom(room)?.getMember(userId)?.membership;

  beforeAll(async () => {
    f = await startBridgeFixture();
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    client = sdkClient(f.hs.baseUrl, alice);
    const prepared = new Promise<void>((resolve) => client.on(ClientEvent.Sync, (state: SyncState) => state === SyncState.Prepared && resolve()));
    await client.startClient({ initialSyncLimit: 20 });
    await prepared;
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#sdk');
  });

  afterAll(async () => {
    await stopClients(client ? [client] : []);
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('joins the portal by alias and talks both ways', async () => {
    roomId = (await client.joinRoom('#irc_test_sdk:localhost')).roomId;
    await until('bob’s ghost in the room', () => (membership(roomId, ghost('bob')) === KnownMembership.Join ? true : undefined));
    await client.sendTextMessage(roomId, 'hello from the SDK');
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === 'hello from the SDK', 'the message on IRC');
    await bob.say('#sdk', 'hello SDK');
    const got = await until('bob’s message in the timeline', () => bodies(roomId).find((e) => e.getSender() === ghost('bob') && e.getContent().body === 'hello SDK'));
    expect(client.getRoom(roomId)?.getMember(ghost('bob'))?.name).toBe('bob');
    expect(got.getContent().msgtype).toBe('m.text');
  });

  it('sees nick changes and departures as membership changes', async () => {
    await bob.changeNick('robert');
    await until('robert joining and bob leaving', () =>
      membership(roomId, ghost('robert')) === KnownMembership.Join && membership(roomId, ghost('bob')) === KnownMembership.Leave ? true : undefined,
    );
    await bob.part('#sdk', 'off to lunch');
    await until('robert leaving', () => (membership(roomId, ghost('robert')) === KnownMembership.Leave ? true : undefined));
    await bob.join('#sdk');
    await until('robert back', () => (membership(roomId, ghost('robert')) === KnownMembership.Join ? true : undefined));
  });

  it('gets an IRC private message as a direct-room invite, and answers it', async () => {
    await bob.say('Alice[m]', 'psst');
    const dm = await until('the DM invite', () => client.getRooms().find((r) => r.getMyMembership() === KnownMembership.Invite && r.getMember(ghost('robert')) !== null)?.roomId);
    await client.joinRoom(dm);
    await until('the private message', () => bodies(dm).find((e) => e.getSender() === ghost('robert') && e.getContent().body === 'psst'));
    await client.sendTextMessage(dm, 'what is it?');
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.to === 'robert' && e.text === 'what is it?', 'the answer as a PM');
  });
});
