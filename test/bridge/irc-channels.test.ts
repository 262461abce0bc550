import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, joinedMembers, matrixUser, NETWORK, sendMessage, startBridgeFixture, timeline, waitForEvent, type BridgeFixture } from './helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

// A real ngircd, a real Skjól and the bridge: a channel portal with Matrix and IRC users talking both ways.
describe('IRC bridge: channels', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let bob: IrcUser;
  let roomId: string;
  const ghost = (nick: string) => `@irc_${NETWORK}_${nick.toLowerCase()}:localhost`;

  beforeAll(async () => {
    f = await startBridgeFixture();
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#skjol');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('joins a channel through its alias and shows who is on IRC', async () => {
    const joined = await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_skjol:localhost')}`, {});
    roomId = joined.room_id;
    await eventually(async () => (await joinedMembers(f.hs, alice, roomId)).includes(ghost('bob')), 'bob’s ghost in the portal');
    const name = await api(f.hs, alice, 'GET', `/_matrix/client/v3/profile/${enc(ghost('bob'))}/displayname`);
    expect(name.displayname).toBe('bob');
    // Alice's own IRC connection joins the channel with a nick from her display name.
    await bob.waitFor((e) => e.kind === 'join' && e.channel === '#skjol' && e.nick === 'Alice[m]', 'Alice[m] joining #skjol');
  });

  it('carries text, emotes and notices from Matrix to IRC', async () => {
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'hello from matrix' });
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.to === '#skjol' && e.text === 'hello from matrix', 'the text');
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.emote', body: 'waves' });
    await bob.waitFor((e) => e.kind === 'action' && e.from === 'Alice[m]' && e.text === 'waves', 'the emote as ACTION');
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.notice', body: 'a notice' });
    await bob.waitFor((e) => e.kind === 'notice' && e.from === 'Alice[m]' && e.text === 'a notice', 'the notice');
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'bold move', format: 'org.matrix.custom.html', formatted_body: '<strong>bold</strong> move' });
    await bob.waitFor((e) => e.kind === 'message' && e.text === '\x02bold\x02 move', 'HTML bold as IRC bold');
  });

  it('carries text, actions, notices and formatting from IRC to Matrix', async () => {
    await bob.say('#skjol', 'hi from irc, Alice[m]');
    const msg = await waitForEvent(f.hs, alice, roomId, (e) => e.sender === ghost('bob') && e.content?.body === 'hi from irc, Alice[m]', 'bob’s message');
    expect(msg.content.msgtype).toBe('m.text');
    expect(msg.content['m.mentions']).toEqual({ user_ids: [alice.userId] });
    await bob.action('#skjol', 'dances');
    const emote = await waitForEvent(f.hs, alice, roomId, (e) => e.sender === ghost('bob') && e.content?.body === 'dances', 'bob’s action');
    expect(emote.content.msgtype).toBe('m.emote');
    await bob.notice('#skjol', 'heads up');
    const notice = await waitForEvent(f.hs, alice, roomId, (e) => e.sender === ghost('bob') && e.content?.body === 'heads up', 'bob’s notice');
    expect(notice.content.msgtype).toBe('m.notice');
    await bob.say('#skjol', 'this is \x02important\x02');
    const bold = await waitForEvent(f.hs, alice, roomId, (e) => e.sender === ghost('bob') && e.content?.body === 'this is important', 'bold from IRC');
    expect(bold.content.formatted_body).toBe('this is <strong>important</strong>');
  });

  it('splits multi-line and long messages into IRC lines and caps very long ones with a link', async () => {
    const mark = bob.mark();
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'line one\nline two\nline three' });
    for (const text of ['line one', 'line two', 'line three']) {
      await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === text, text, undefined, mark);
    }
    const long = Array.from({ length: 120 }, (_, i) => `word${i}`).join(' ');
    const mark2 = bob.mark();
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: long });
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && (e.text ?? '').endsWith('word119'), 'the end of the long message', undefined, mark2);
    const parts = bob.events.slice(mark2).filter((e) => e.kind === 'message' && e.from === 'Alice[m]').map((e) => e.text!);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.join(' ')).toBe(long);
    for (const p of parts) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(400);
    const mark3 = bob.mark();
    const eventId = await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: Array.from({ length: 12 }, (_, i) => `row ${i}`).join('\n') });
    const cap = await bob.waitFor((e) => e.kind === 'message' && (e.text ?? '').includes('more lines'), 'the truncation line', undefined, mark3);
    expect(cap.text).toContain(enc(eventId));
    const rows = bob.events.slice(mark3).filter((e) => e.kind === 'message' && e.text?.startsWith('row '));
    expect(rows.length).toBe(4); // max_lines 5: four rows and the link
  });

  // The homeserver serves new media only to Matrix users (enable_authenticated_media): the link points at the
  // bridge, which fetches the file with its as_token, for this one mxc:// URI only.
  it('sends media to IRC as a link that downloads the file', async () => {
    const upload = await fetch(`${f.hs.baseUrl}/_matrix/media/v3/upload?filename=cat.png`, { method: 'POST', headers: { authorization: `Bearer ${alice.accessToken}`, 'content-type': 'image/png' }, body: Buffer.from('not really a png') });
    const { content_uri: mxc } = (await upload.json()) as { content_uri: string };
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.image', body: 'cat.png', url: mxc, info: { mimetype: 'image/png' } });
    const line = await bob.waitFor((e) => e.kind === 'message' && (e.text ?? '').startsWith('cat.png http'), 'the media link');
    const url = line.text!.split(' ')[1]!;
    const download = await fetch(url);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe('image/png');
    expect(download.headers.get('content-disposition')).toBe('inline; filename="cat.png"');
    expect(await download.text()).toBe('not really a png');
    const mediaId = mxc.split('/').pop()!;
    expect((await fetch(`${f.hs.baseUrl}/_matrix/media/v3/download/localhost/${mediaId}`)).status).toBe(404);

    // The link is good for that file only: another media id, or a changed signature, is 404.
    const other = await fetch(`${f.hs.baseUrl}/_matrix/media/v3/upload`, { method: 'POST', headers: { authorization: `Bearer ${alice.accessToken}` }, body: Buffer.from('private') });
    const otherId = ((await other.json()) as { content_uri: string }).content_uri.split('/').pop()!;
    expect((await fetch(url.replace(mediaId, otherId))).status).toBe(404);
    const parts = new URL(url).pathname.split('/');
    const sig = parts.at(-4)!;
    parts[parts.length - 4] = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    expect((await fetch(new URL(parts.join('/'), url))).status).toBe(404);
  });

  it('renders replies and edits for IRC', async () => {
    const original = await waitForEvent(f.hs, alice, roomId, (e) => e.sender === ghost('bob') && e.content?.body === 'heads up', 'bob’s notice');
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: '> <@irc_test_bob:localhost> heads up\n\nthanks bob', 'm.relates_to': { 'm.in_reply_to': { event_id: original.event_id } } });
    await bob.waitFor((e) => e.kind === 'message' && e.text === '<bob> "heads up" <- thanks bob', 'the reply');
    const first = await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'teh typo' });
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'teh typo', 'the original');
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: '* the typo', 'm.new_content': { msgtype: 'm.text', body: 'the typo' }, 'm.relates_to': { rel_type: 'm.replace', event_id: first } });
    await bob.waitFor((e) => e.kind === 'message' && e.text === '* the typo', 'the edit');
  });

  it('mirrors IRC joins, parts, nick changes, quits, kicks, topics and ops', async () => {
    const carol = await connectIrcUser(f.irc, 'carol');
    await carol.join('#skjol');
    await eventually(async () => (await joinedMembers(f.hs, alice, roomId)).includes(ghost('carol')), 'carol’s ghost joining');
    await carol.changeNick('carola');
    await eventually(async () => {
      const members = await joinedMembers(f.hs, alice, roomId);
      return members.includes(ghost('carola')) && !members.includes(ghost('carol'));
    }, 'the nick change');
    // A quit right after a nick change is seen under the new nick.
    await carol.disconnect('gone fishing');
    await eventually(async () => !(await joinedMembers(f.hs, alice, roomId)).includes(ghost('carola')), 'carola quitting');
    const leave = (await timeline(f.hs, alice, roomId)).filter((e) => e.type === 'm.room.member' && e.state_key === ghost('carola') && e.content.membership === 'leave').pop();
    expect(leave?.content.reason).toContain('gone fishing');
    const erin = await connectIrcUser(f.irc, 'erin');
    await erin.join('#skjol');
    await eventually(async () => (await joinedMembers(f.hs, alice, roomId)).includes(ghost('erin')), 'erin’s ghost joining');
    await erin.part('#skjol', 'bye');
    await eventually(async () => !(await joinedMembers(f.hs, alice, roomId)).includes(ghost('erin')), 'erin leaving');
    await erin.disconnect();

    // bob created #skjol, so he is its operator.
    await bob.topic('#skjol', 'New topic from IRC');
    await eventually(async () => (await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`)).topic === 'New topic from IRC', 'the topic');
    const dave = await connectIrcUser(f.irc, 'dave');
    await dave.join('#skjol');
    await eventually(async () => (await joinedMembers(f.hs, alice, roomId)).includes(ghost('dave')), 'dave’s ghost');
    await bob.mode('#skjol', '+o', 'dave');
    await eventually(async () => (await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`)).users?.[ghost('dave')] === 50, 'op as power level 50');
    await bob.send('KICK', '#skjol', 'dave', 'behave');
    await eventually(async () => {
      const kick = (await timeline(f.hs, alice, roomId)).find((e) => e.type === 'm.room.member' && e.state_key === ghost('dave') && e.content.membership === 'leave');
      return kick && kick.content.reason?.includes('behave');
    }, 'the kick with its reason');
    await dave.disconnect();
  });

  it('a new display name becomes a new nick, and an IRC kick removes the Matrix user from the room', async () => {
    await api(f.hs, alice, 'PUT', `/_matrix/client/v3/profile/${enc(alice.userId)}/displayname`, { displayname: 'Alice Liddell' });
    await bob.waitFor((e) => e.kind === 'nick' && e.nick === 'Alice[m]' && e.newNick === 'AliceLiddell[m]', 'the nick following the display name');
    await bob.send('KICK', '#skjol', 'AliceLiddell[m]', 'testing kicks');
    await eventually(async () => {
      const state = await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(alice.userId)}`).catch(() => undefined);
      return state?.membership === 'leave' && String(state.reason).includes('testing kicks');
    }, 'alice kicked from the portal with the IRC reason');
    await api(f.hs, alice, 'PUT', `/_matrix/client/v3/profile/${enc(alice.userId)}/displayname`, { displayname: 'Alice' });
    await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, {});
    await bob.waitFor((e) => e.kind === 'join' && e.channel === '#skjol' && (e.nick === 'Alice[m]' || e.nick === 'AliceLiddell[m]'), 'alice back on IRC');
  });

  it('a message IRC refuses is reported in the room, not dropped silently', async () => {
    await eventually(async () => (await bob.names('#skjol')).includes('Alice[m]'), 'Alice[m] back in #skjol');
    await bob.mode('#skjol', '+m');
    await bob.waitFor((e) => e.kind === 'mode' && e.modes === '+m', 'the channel moderated');
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'can anyone hear me?' });
    const notice = await waitForEvent(f.hs, alice, roomId, (e) => e.sender === '@ircbot:localhost' && e.content?.msgtype === 'm.notice' && /refused/.test(e.content.body), 'the refusal notice');
    expect(notice.content.body).toMatch(/^Alice: IRC refused this/);
    expect(notice.content['m.mentions']).toEqual({ user_ids: [alice.userId] });
    await bob.mode('#skjol', '-m');
  });

  it('a channel the bridge is kept out of (invite-only) says so in its room', async () => {
    await bob.join('#private');
    await bob.mode('#private', '+i');
    await bob.waitFor((e) => e.kind === 'mode' && e.channel === '#private' && e.modes === '+i', 'the channel invite-only');
    const privateRoom = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_private:localhost')}`, {})).room_id;
    const botNotice = await waitForEvent(f.hs, alice, privateRoom, (e) => e.sender === '@ircbot:localhost' && /cannot join #private/.test(e.content?.body ?? ''), 'the bot’s notice');
    expect(botNotice.content.body).toMatch(/will not reach this room/);
    await waitForEvent(f.hs, alice, privateRoom, (e) => e.sender === '@ircbot:localhost' && /^Alice: IRC refused this/.test(e.content?.body ?? ''), 'the notice about alice’s connection');
    const mark = bob.mark();
    await sendMessage(f.hs, alice, privateRoom, { msgtype: 'm.text', body: 'let me in' });
    // The refused line is given up after three attempts; the next message in another channel still goes out.
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'meanwhile in #skjol' });
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'meanwhile in #skjol', 'the message behind the refused one', 30_000, mark);
    expect(bob.events.slice(mark).some((e) => e.text === 'let me in')).toBe(false);
  });

  it('a Matrix topic change and leaving the room reach IRC', async () => {
    // Alice needs to be an IRC op to set the topic: bob gives it to her.
    await bob.mode('#skjol', '+o', 'Alice[m]');
    await eventually(async () => (await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`)).users?.[alice.userId] === 50, 'IRC op as power level 50 for Alice');
    await api(f.hs, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'Topic from Matrix' });
    await bob.waitFor((e) => e.kind === 'topic' && e.text === 'Topic from Matrix' && e.from === 'Alice[m]', 'the topic on IRC');
    await api(f.hs, alice, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/leave`, {});
    await bob.waitFor((e) => e.kind === 'part' && e.nick === 'Alice[m]' && e.channel === '#skjol', 'Alice[m] parting');
  });
});
