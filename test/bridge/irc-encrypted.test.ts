import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEncryptedRoom, joinEncryptedRoom, specViolations, startCryptoClient, stopClients, until, waitForDecrypted, waitForRoom } from '../helpers/crypto.js';
import type { TestUser } from '../helpers/users.js';
import { matrixUser, NETWORK, startBridgeFixture, timeline, type BridgeFixture } from './helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

// Encrypted rooms as Element makes them, with matrix-js-sdk's Rust crypto on the Matrix side: the bridge
// decrypts and encrypts with its own devices (one per ghost, one for the bot), its keys only in its store.
describe('IRC bridge: end-to-bridge encryption', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let client: MatrixClient;
  let bob: IrcUser;
  let portal: string;
  const ghost = (nick: string) => `@irc_${NETWORK}_${nick}:localhost`;
  const botId = '@ircbot:localhost';

  /** The decrypted body of a message from `sender` that matches, as alice's client shows it. */
  const decryptedFrom = (roomId: string, sender: string, match: (body: string) => boolean, what: string) =>
    until(what, () =>
      client
        .getRoom(roomId)
        ?.getLiveTimeline()
        .getEvents()
        .find((e) => e.isEncrypted() && !e.isDecryptionFailure() && e.getSender() === sender && match(String(e.getClearContent()?.body ?? ''))),
      20_000,
    );

  beforeAll(async () => {
    f = await startBridgeFixture({ encryption: true, network: { channels: [{ channel: '#secret', encrypted: true }] } });
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    client = await startCryptoClient(f.hs.baseUrl, alice);
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#secret');
  });

  afterAll(async () => {
    await stopClients(client ? [client] : []);
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('an encrypted portal carries messages both ways, encrypted on the Matrix side', async () => {
    portal = (await client.joinRoom('#irc_test_secret:localhost')).roomId;
    await waitForRoom(client, portal, [alice.userId, botId, ghost('bob')]);
    await bob.waitFor((e) => e.kind === 'join' && e.nick === 'Alice[m]', 'Alice[m] joining #secret');
    await client.sendTextMessage(portal, 'hello over megolm');
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.to === '#secret' && e.text === 'hello over megolm', 'the decrypted message on IRC');
    await bob.say('#secret', 'hello back from IRC');
    const got = await waitForDecrypted(client, portal, 'hello back from IRC', 20_000);
    expect(got.getSender()).toBe(ghost('bob'));
    // On the wire (what the homeserver stores) both messages are ciphertext.
    const wire = (await timeline(f.hs, alice, portal)).filter((e) => e.type === 'm.room.message' || e.type === 'm.room.encrypted');
    expect(wire.length).toBeGreaterThanOrEqual(2);
    expect(wire.every((e) => e.type === 'm.room.encrypted')).toBe(true);
    expect(JSON.stringify(wire)).not.toContain('hello back from IRC');
  });

  it('an IRC private message opens an encrypted direct room, and the answer reaches IRC', async () => {
    await bob.say('Alice[m]', 'a private secret');
    const dm = await until('the encrypted DM invite', () => client.getRooms().find((r) => r.getMyMembership() === 'invite' && r.getMember(ghost('bob'))?.membership === 'join')?.roomId, 20_000);
    await joinEncryptedRoom(client, dm);
    await waitForDecrypted(client, dm, 'a private secret', 20_000);
    await client.sendTextMessage(dm, 'a private answer');
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.to === 'bob' && e.text === 'a private answer', 'the answer as a PM');
  });

  it('an encrypted DM that a Matrix user opens with a new IRC nick carries her first message at once', async () => {
    const erin = await connectIrcUser(f.irc, 'erin');
    try {
      // As Element does: create the encrypted room with the invite, then type straight away.
      const dm = await createEncryptedRoom(client, [ghost('erin')]);
      await waitForRoom(client, dm, [alice.userId]);
      await client.sendTextMessage(dm, 'first words, encrypted');
      await erin.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.to === 'erin' && e.text === 'first words, encrypted', 'the first message as a PM', 20_000);
      await erin.say('Alice[m]', 'read you');
      await waitForDecrypted(client, dm, 'read you', 20_000);
    } finally {
      await erin.disconnect();
    }
  });

  it('an encrypted admin room works', async () => {
    const admin = await createEncryptedRoom(client, [botId]);
    await waitForRoom(client, admin, [alice.userId, botId]);
    await decryptedFrom(admin, botId, (b) => b.includes('admin room'), 'the encrypted welcome');
    await client.sendTextMessage(admin, '!whois bob');
    await decryptedFrom(admin, botId, (b) => b.startsWith('bob is '), 'the encrypted !whois answer');
  });

  it('after a bridge restart its devices are the same and it still reads and writes encrypted messages', async () => {
    const before = (await client.getCrypto()!.getUserDeviceInfo([ghost('bob'), botId], true));
    const ghostDevices = [...(before.get(ghost('bob'))?.keys() ?? [])];
    expect(ghostDevices).toHaveLength(1);
    await f.stopBridge();
    const mark = bob.mark();
    await client.sendTextMessage(portal, 'sent while the bridge was down');
    await f.startBridge();
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === 'sent while the bridge was down', 'the queued encrypted message', 30_000, mark);
    await bob.say('#secret', 'ghost still encrypts');
    await waitForDecrypted(client, portal, 'ghost still encrypts', 30_000);
    const after = await client.getCrypto()!.getUserDeviceInfo([ghost('bob')], true);
    expect([...(after.get(ghost('bob'))?.keys() ?? [])]).toEqual(ghostDevices);
    expect(bob.events.slice(mark).filter((e) => e.kind === 'message' && e.text === 'sent while the bridge was down')).toHaveLength(1);
    expect(specViolations).toEqual([]);
  });
});
