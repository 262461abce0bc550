import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, invites, joinedMembers, matrixUser, NETWORK, sendMessage, startBridgeFixture, timeline, waitForEvent, type BridgeFixture } from './helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

// Channel keys (+k) from !join and from the config, and invites both ways, against a real ngircd.
describe('IRC bridge: channel keys and invites', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let bob: IrcUser;
  let erin: IrcUser;
  let adminRoom: string;
  let vaultRoom: string;
  const ghost = (nick: string) => `@irc_${NETWORK}_${nick.toLowerCase()}:localhost`;
  const botId = '@ircbot:localhost';

  const command = async (body: string) => {
    const since = Date.now() - 5;
    await sendMessage(f.hs, alice, adminRoom, { msgtype: 'm.text', body });
    return eventually(async () => (await timeline(f.hs, alice, adminRoom)).find((e) => e.sender === botId && e.content?.msgtype === 'm.notice' && e.origin_server_ts >= since)?.content.body as string | undefined, `the answer to ${body}`);
  };
  const portalInvite = (channel: string) =>
    eventually(async () => (await invites(f.hs, alice)).find((i) => i.state.some((e) => e.type === 'm.room.name' && e.content?.name === `#${channel}`)), `the invite to #${channel}’s portal`);

  beforeAll(async () => {
    f = await startBridgeFixture();
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    bob = await connectIrcUser(f.irc, 'bob');
    erin = await connectIrcUser(f.irc, 'erin');
    await bob.join('#vault');
    await bob.mode('#vault', '+k', 'sesame');
    adminRoom = (await api(f.hs, alice, 'POST', '/_matrix/client/v3/createRoom', { is_direct: true, invite: [botId], preset: 'trusted_private_chat' })).room_id;
    await waitForEvent(f.hs, alice, adminRoom, (e) => e.sender === botId && String(e.content?.body).startsWith('This is your IRC bridge admin room'), 'the welcome');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await erin?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('!join #chan key joins a +k channel, and the bridge listens there too', async () => {
    const wrong = await command('!join #vault wrongkey');
    expect(wrong).toMatch(/^!join failed: cannot join #vault/);
    const answer = await command('!join #vault sesame');
    expect(answer).toContain('Joined #vault on test');
    await bob.waitFor((e) => e.kind === 'join' && e.channel === '#vault' && e.nick === 'Alice[m]', 'Alice[m] joining #vault');
    await eventually(async () => (await bob.names('#vault')).includes('SkjolBridge'), 'the bridge bot in #vault');
    vaultRoom = (await portalInvite('vault')).roomId;
    await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc(vaultRoom)}`, {});
    await bob.say('#vault', 'the treasure is here');
    await waitForEvent(f.hs, alice, vaultRoom, (e) => e.sender === ghost('bob') && e.content?.body === 'the treasure is here', 'bob’s line in the portal');
  });

  it('keeps the key across a bridge restart, and takes keys from the config mappings', async () => {
    await bob.join('#conf');
    await bob.mode('#conf', '+k', 'c0nf');
    await f.stopBridge();
    f.config.networks[NETWORK]!.channels.push({ channel: '#conf', key: 'c0nf' });
    const mark = bob.mark();
    await f.startBridge();
    // Alice's connection rejoins #vault with the key it joined with; the bot joins #conf with the configured one.
    await bob.waitFor((e) => e.kind === 'join' && e.channel === '#vault' && e.nick === 'Alice[m]', 'Alice[m] back in #vault', 30_000, mark);
    await eventually(async () => (await bob.names('#conf')).includes('SkjolBridge'), 'the bridge bot in #conf', 30_000);
    await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_conf:localhost')}`, {});
    await bob.waitFor((e) => e.kind === 'join' && e.channel === '#conf' && e.nick === 'Alice[m]', 'Alice[m] joining #conf with the configured key', undefined, mark);
  });

  it('an IRC INVITE of a Matrix user’s nick becomes a Matrix invite to the portal, even for +i channels', async () => {
    await bob.join('#hideout');
    await bob.mode('#hideout', '+i');
    await bob.send('INVITE', 'Alice[m]', '#hideout');
    const invite = await portalInvite('hideout');
    const member = invite.state.find((e) => e.type === 'm.room.member' && e.state_key === alice.userId);
    expect(member?.content.reason).toBe('bob invited you to #hideout on IRC');
    await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc(invite.roomId)}`, {});
    // The IRC invite lets Alice's connection into the invite-only channel.
    await bob.waitFor((e) => e.kind === 'join' && e.channel === '#hideout' && e.nick === 'Alice[m]', 'Alice[m] joining #hideout');
    await sendMessage(f.hs, alice, invite.roomId, { msgtype: 'm.text', body: 'thanks for the invite' });
    await bob.waitFor((e) => e.kind === 'message' && e.to === '#hideout' && e.text === 'thanks for the invite', 'Alice’s line in #hideout');
  });

  it('a Matrix invite of an IRC user’s ghost into a portal sends an IRC INVITE from the inviter', async () => {
    await api(f.hs, alice, 'POST', `/_matrix/client/v3/rooms/${enc(vaultRoom)}/invite`, { user_id: ghost('erin') });
    const invite = await erin.waitFor((e) => e.kind === 'invite' && e.channel === '#vault', 'the IRC INVITE');
    expect(invite.from).toBe('Alice[m]');
    expect(invite.nick).toBe('erin');
    await erin.join('#vault', 'sesame');
    await eventually(async () => (await joinedMembers(f.hs, alice, vaultRoom)).includes(ghost('erin')), 'erin’s ghost joining the portal');
  });
});
