import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, matrixUser, sendMessage, startBridgeFixture, type BridgeFixture } from './helpers/bridgeFixture.js';
import { inspircdMissing, startInspircd } from './helpers/inspircd.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

const missing = inspircdMissing(true);
if (missing) console.log(`skipping the SASL bridge tests: ${missing}`);

// SASL against real services: InspIRCd with Debian's atheme-services linked to it, accounts made with NickServ.
describe.skipIf(missing !== undefined)('IRC bridge: SASL with InspIRCd and atheme', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let bob: IrcUser;
  let adminRoom: string;
  const botId = '@ircbot:localhost';

  const accountOf = (nick: string) => new Promise<string | undefined>((resolve) => bob.client.whois(nick, (info) => resolve(info?.account)));

  beforeAll(async () => {
    f = await startBridgeFixture({ ircServer: () => startInspircd({ services: true }) });
    // An account registered the way an IRC user does it.
    const registrar = await connectIrcUser(f.irc, 'aliceacct');
    const mark = registrar.mark();
    await registrar.say('NickServ', 'REGISTER sasl-test-pass alice@example.org');
    await registrar.waitFor((e) => e.kind === 'notice' && e.from === 'NickServ' && /registered/i.test(e.text ?? ''), 'NickServ registering the account', 15_000, mark);
    await registrar.disconnect();
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#sasl');
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    adminRoom = (await api(f.hs, alice, 'POST', '/_matrix/client/v3/createRoom', { is_direct: true, invite: [botId], preset: 'trusted_private_chat' })).room_id;
    await eventually(async () => (await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(adminRoom)}/joined_members`)).joined[botId], 'the bot joining the admin room');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('!sasl logs the Matrix user’s IRC connection into their services account (WHOIS 330)', async () => {
    await sendMessage(f.hs, alice, adminRoom, { msgtype: 'm.text', body: '!sasl aliceacct sasl-test-pass' });
    const roomId = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_sasl:localhost')}`, {})).room_id as string;
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'logged in?' });
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === 'logged in?', 'Alice’s line', 30_000);
    expect(await eventually(() => accountOf('Alice[m]'), 'the account in WHOIS', 20_000)).toBe('aliceacct');
  });
});
