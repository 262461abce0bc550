import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, invites, joinedMembers, matrixUser, NETWORK, sendMessage, startBridgeFixture, timeline, waitForEvent, type BridgeFixture } from './helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

// Private messages ↔ direct rooms, and the admin room where a Matrix user steers their IRC connection.
describe('IRC bridge: direct messages and the admin room', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let bob: IrcUser;
  let erin: IrcUser;
  let adminRoom: string;
  const ghost = (nick: string) => `@irc_${NETWORK}_${nick.toLowerCase()}:localhost`;
  const botId = '@ircbot:localhost';

  const lastNotice = async (after: number) =>
    (await timeline(f.hs, alice, adminRoom)).filter((e) => e.sender === botId && e.content?.msgtype === 'm.notice' && e.origin_server_ts >= after).map((e) => e.content.body as string);
  const command = async (body: string) => {
    const since = Date.now() - 5;
    await sendMessage(f.hs, alice, adminRoom, { msgtype: 'm.text', body });
    return eventually(async () => (await lastNotice(since))[0], `the answer to ${body}`);
  };

  beforeAll(async () => {
    f = await startBridgeFixture();
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    bob = await connectIrcUser(f.irc, 'bob');
    erin = await connectIrcUser(f.irc, 'erin');
    await bob.join('#lobby');
    const joined = await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_lobby:localhost')}`, {});
    await bob.waitFor((e) => e.kind === 'join' && e.nick === 'Alice[m]', 'Alice[m] on IRC');
    expect(joined.room_id).toMatch(/^!/);
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await erin?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('an IRC private message opens a direct room from the sender’s ghost, and replies go back', async () => {
    await bob.say('Alice[m]', 'psst, alice');
    const invite = await eventually(async () => (await invites(f.hs, alice)).find((i) => i.state.some((e) => e.type === 'm.room.member' && e.state_key === alice.userId && e.sender === ghost('bob'))), 'the DM invite');
    const member = invite.state.find((e) => e.type === 'm.room.member' && e.state_key === alice.userId);
    expect(member?.content.is_direct).toBe(true);
    await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc(invite.roomId)}`, {});
    const msg = await waitForEvent(f.hs, alice, invite.roomId, (e) => e.sender === ghost('bob') && e.content?.body === 'psst, alice', 'the private message');
    expect(msg.content.msgtype).toBe('m.text');
    await sendMessage(f.hs, alice, invite.roomId, { msgtype: 'm.text', body: 'hi bob, privately' });
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.to === 'bob' && e.text === 'hi bob, privately', 'the reply as a PM');
    // A second message lands in the same room.
    await bob.say('Alice[m]', 'again');
    await waitForEvent(f.hs, alice, invite.roomId, (e) => e.sender === ghost('bob') && e.content?.body === 'again', 'the second PM in the same room');
  });

  it('inviting an IRC nick’s ghost to a direct room sends private messages to that nick', async () => {
    const room = await api(f.hs, alice, 'POST', '/_matrix/client/v3/createRoom', { is_direct: true, invite: [ghost('erin')], preset: 'trusted_private_chat' });
    await eventually(async () => (await joinedMembers(f.hs, alice, room.room_id)).includes(ghost('erin')), 'erin’s ghost joining');
    await sendMessage(f.hs, alice, room.room_id, { msgtype: 'm.emote', body: 'says hello to erin' });
    await erin.waitFor((e) => e.kind === 'action' && e.from === 'Alice[m]' && e.to === 'erin' && e.text === 'says hello to erin', 'the emote as a private ACTION');
    await erin.say('Alice[m]', 'hello alice');
    await waitForEvent(f.hs, alice, room.room_id, (e) => e.sender === ghost('erin') && e.content?.body === 'hello alice', 'erin’s answer in the same room');
  });

  it('writing to a nick that left IRC says so in the direct room', async () => {
    const room = await api(f.hs, alice, 'POST', '/_matrix/client/v3/createRoom', { is_direct: true, invite: [ghost('ghosted')], preset: 'trusted_private_chat' });
    await eventually(async () => (await joinedMembers(f.hs, alice, room.room_id)).includes(ghost('ghosted')), 'the ghost joining');
    await sendMessage(f.hs, alice, room.room_id, { msgtype: 'm.text', body: 'anyone there?' });
    const notice = await waitForEvent(f.hs, alice, room.room_id, (e) => e.sender === ghost('ghosted') && e.content?.msgtype === 'm.notice', 'the notice');
    expect(notice.content.body).toMatch(/not on IRC right now/);
  });

  it('the admin room answers commands and mistakes', async () => {
    const room = await api(f.hs, alice, 'POST', '/_matrix/client/v3/createRoom', { is_direct: true, invite: [botId], preset: 'trusted_private_chat' });
    adminRoom = room.room_id;
    await waitForEvent(f.hs, alice, adminRoom, (e) => e.sender === botId && /admin room/.test(e.content?.body ?? ''), 'the welcome');
    expect(await command('!help')).toMatch(/!nick.*\n.*!join/s);
    expect(await command('!frobnicate')).toMatch(/Unknown command !frobnicate/);
    expect(await command('!nick 9lives')).toMatch(/not a valid IRC nick/);
    expect(await command('!join elsewhere')).toMatch(/not an IRC channel name/);
    expect(await command('!whois')).toMatch(/Usage: !whois/);
    expect(await command('hello bot')).toMatch(/Commands start with "!"/);

    expect(await command('!nick Alicia')).toMatch(/now Alicia/);
    await bob.waitFor((e) => e.kind === 'nick' && e.nick === 'Alice[m]' && e.newNick === 'Alicia', 'the nick change on IRC');
    expect(await command('!whois bob')).toMatch(/^bob is .*@/);
    expect(await command('!whois nobody_here')).toMatch(/not on test/);

    await bob.join('#elsewhere');
    expect(await command('!join #elsewhere')).toMatch(/Joined #elsewhere/);
    await bob.waitFor((e) => e.kind === 'join' && e.channel === '#elsewhere' && e.nick === 'Alicia', 'Alicia joining #elsewhere');
    await eventually(async () => (await invites(f.hs, alice)).some((i) => i.state.some((e) => e.type === 'm.room.canonical_alias' && e.content?.alias === '#irc_test_elsewhere:localhost')), 'the invite to the #elsewhere portal');
    expect(await command('!part #elsewhere')).toMatch(/Left #elsewhere/);
    await bob.waitFor((e) => e.kind === 'part' && e.channel === '#elsewhere' && e.nick === 'Alicia', 'Alicia parting #elsewhere');

    expect(await command('!quit')).toMatch(/Disconnected from test/);
    await bob.waitFor((e) => e.kind === 'quit' && e.nick === 'Alicia', 'Alicia quitting IRC');
    expect(await command('!quit')).toMatch(/not connected/);
  });

  it('!sasl stores the account, redacts the password, and a network without SASL says so at once', async () => {
    // Connected again first, so the new account is used straight away.
    const lobby = (await api(f.hs, alice, 'GET', `/_matrix/client/v3/directory/room/${enc('#irc_test_lobby:localhost')}`)).room_id;
    await sendMessage(f.hs, alice, lobby, { msgtype: 'm.text', body: 'back again' });
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'back again', 'alice connected again');
    const since = Date.now() - 5;
    const eventId = await sendMessage(f.hs, alice, adminRoom, { msgtype: 'm.text', body: '!sasl alicia s3cret-pass' });
    expect(await eventually(async () => (await lastNotice(since)).find((b) => /SASL account/.test(b)), 'the !sasl answer')).toMatch(/SASL account alicia saved/);
    const redacted = await eventually(async () => {
      const e = (await timeline(f.hs, alice, adminRoom)).find((x) => x.event_id === eventId);
      return e && e.content && Object.keys(e.content).length === 0 ? e : undefined;
    }, 'the redaction of the password');
    expect(JSON.stringify(redacted)).not.toContain('s3cret-pass');
    // ngircd offers no SASL: the reconnection with it fails at once, with a clear word, instead of hanging.
    const failure = await eventually(async () => (await lastNotice(since)).find((b) => /SASL login on test failed/.test(b)), 'the SASL failure notice', 15_000);
    expect(failure).toMatch(/does not offer SASL/);
    expect(await command('!sasl off')).toMatch(/SASL is off for test/);
    const mark = bob.mark();
    await sendMessage(f.hs, alice, lobby, { msgtype: 'm.text', body: 'without SASL again' });
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'without SASL again', 'alice connected without SASL', 20_000, mark);
  });

  it('odd input from IRC (control bytes, invalid UTF-8) never stops the bridge', async () => {
    const roomId = (await api(f.hs, alice, 'GET', `/_matrix/client/v3/directory/room/${enc('#irc_test_lobby:localhost')}`)).room_id;
    await bob.client.conn!.write(Buffer.concat([Buffer.from('PRIVMSG #lobby :bad '), Buffer.from([0xff, 0xfe, 0x01, 0x07]), Buffer.from(' bytes\r\n')]) as unknown as string);
    await bob.say('#lobby', 'still alive');
    await waitForEvent(f.hs, alice, roomId, (e) => e.sender === ghost('bob') && e.content?.body === 'still alive', 'the next message');
    const odd = (await timeline(f.hs, alice, roomId)).find((e) => e.sender === ghost('bob') && String(e.content?.body ?? '').startsWith('bad '));
    expect(odd?.content.body).toMatch(/bytes$/);
  });
});
