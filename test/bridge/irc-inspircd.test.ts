import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, matrixUser, NETWORK, sendMessage, startBridgeFixture, timeline, type BridgeFixture } from './helpers/bridgeFixture.js';
import { inspircdMissing, startInspircd } from './helpers/inspircd.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

const missing = inspircdMissing();
if (missing) console.log(`skipping the InspIRCd bridge tests: ${missing}`);

// InspIRCd 3 as Debian ships it, which behaves differently from ngircd in ways users notice.
describe.skipIf(missing !== undefined)('IRC bridge on InspIRCd', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let bob: IrcUser;
  let roomId: string;
  const ghost = (nick: string) => `@irc_${NETWORK}_${nick}:localhost`;

  beforeAll(async () => {
    f = await startBridgeFixture({ ircServer: () => startInspircd() });
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#insp');
    roomId = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_insp:localhost')}`, {})).room_id;
    await bob.waitFor((e) => e.kind === 'join' && e.nick === 'Alice[m]', 'Alice[m] on IRC');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('a quit reason reads "Quit: …" once, though InspIRCd already adds the prefix', async () => {
    const dave = await connectIrcUser(f.irc, 'dave');
    await dave.join('#insp');
    await eventually(async () => (await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`)).joined[ghost('dave')], 'dave’s ghost joining');
    await dave.disconnect('bye now');
    const leave = await eventually(
      async () => (await timeline(f.hs, alice, roomId)).find((e) => e.type === 'm.room.member' && e.state_key === ghost('dave') && e.content?.membership === 'leave'),
      'dave’s ghost leaving',
    );
    expect(leave.content.reason).toBe('Quit: bye now');
  });
});

// InspIRCd limits connections per IP (Debian's config: 3). Here 3: the bridge bot, bob and Alice fill it.
describe.skipIf(missing !== undefined)('IRC bridge on InspIRCd: a connection the network refuses', () => {
  let f: BridgeFixture;
  let bob: IrcUser;
  const botId = '@ircbot:localhost';

  beforeAll(async () => {
    f = await startBridgeFixture({ ircServer: () => startInspircd({ connectionsPerIp: 3 }), network: { reconnect: { base_ms: 300, give_up_after: 3 } } });
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#limit');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  const botNotices = async (user: TestUser, roomId: string) =>
    (await timeline(f.hs, user, roomId)).filter((e) => e.sender === botId && e.content?.msgtype === 'm.notice').map((e) => e.content.body as string);

  it('the user whose connection is refused reads the server’s reason in the admin room and the portal, and the waiting message is reported as not delivered', async () => {
    const alice = await matrixUser(f.hs, 'alice', 'Alice');
    const roomId = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_limit:localhost')}`, {})).room_id as string;
    await bob.waitFor((e) => e.kind === 'join' && e.nick === 'Alice[m]', 'Alice[m] on IRC');

    const carol = await matrixUser(f.hs, 'carol', 'Carol');
    const admin = (await api(f.hs, carol, 'POST', '/_matrix/client/v3/createRoom', { is_direct: true, invite: [botId], preset: 'trusted_private_chat' })).room_id as string;
    await eventually(async () => (await api(f.hs, carol, 'GET', `/_matrix/client/v3/rooms/${enc(admin)}/joined_members`)).joined[botId], 'the bot joining the admin room');
    await api(f.hs, carol, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, {});
    await sendMessage(f.hs, carol, roomId, { msgtype: 'm.text', body: 'hello from carol' });

    const inPortal = await eventually(async () => (await botNotices(alice, roomId)).find((b) => b.startsWith('Carol: your message “hello from carol” was not delivered')), 'the portal saying the message was not delivered', 40_000);
    expect(inPortal).toMatch(/No more connections allowed from your host/);
    const inAdmin = await eventually(async () => {
      const notices = await botNotices(carol, admin);
      return notices.some((b) => /stopped trying/.test(b)) && notices;
    }, 'the admin room saying the bridge stopped trying', 40_000);
    expect(inAdmin.filter((b) => /refused your connection: “.*No more connections allowed from your host/.test(b)).length).toBeGreaterThanOrEqual(1);
    // Per try (joining the room, then speaking): told at the first refusal and when it stopped, not at every attempt.
    expect(inAdmin.length).toBeLessThanOrEqual(4);
    expect(bob.events.some((e) => e.text === 'hello from carol')).toBe(false);
  });
});

// One address per Matrix user (bind_address: a range) keeps each user within the network's per-IP limit.
describe.skipIf(missing !== undefined)('IRC bridge on InspIRCd: one address per user from bind_address', () => {
  let f: BridgeFixture;
  let bob: IrcUser;

  beforeAll(async () => {
    // Linux routes all of 127.0.0.0/8 to the loopback interface, as an operator routes an IPv6 /64 to the host.
    f = await startBridgeFixture({ ircServer: () => startInspircd({ connectionsPerIp: 1 }), network: { bind_address: '127.0.0.0/8' } });
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#many');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('with one connection allowed per address, every Matrix user still gets on IRC, each from their own address', async () => {
    const hosts: string[] = [];
    for (const name of ['Carol', 'Dave', 'Erin']) {
      const user = await matrixUser(f.hs, name.toLowerCase(), name);
      const roomId = (await api(f.hs, user, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_many:localhost')}`, {})).room_id as string;
      await sendMessage(f.hs, user, roomId, { msgtype: 'm.text', body: `${name} is here` });
      const line = await bob.waitFor((e) => e.kind === 'message' && e.from === `${name}[m]` && e.text === `${name} is here`, `${name}’s line on IRC`, 30_000);
      hosts.push(String(line.raw?.host));
    }
    expect(new Set(hosts).size).toBe(3);
    for (const host of hosts) expect(host).toMatch(/^127\.\d+\.\d+\.\d+$/);
    expect(hosts).not.toContain('127.0.0.1');
  });
});
