import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, matrixUser, NETWORK, sendMessage, startBridgeFixture, type BridgeFixture } from './helpers/bridgeFixture.js';
import { inspircdMissing, startInspircd } from './helpers/inspircd.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

const ghost = (nick: string) => `@irc_${NETWORK}_${nick.toLowerCase()}:localhost`;

/** A bare IRC client that asks for message-tags and keeps every raw line (the IRC library drops tags). */
class TaggedIrcUser {
  readonly lines: string[] = [];
  private socket!: Socket;
  private buffer = '';

  static async connect(port: number, nick: string, channel: string): Promise<TaggedIrcUser> {
    const u = new TaggedIrcUser();
    u.socket = connect(port, '127.0.0.1');
    u.socket.setEncoding('utf8');
    u.socket.on('data', (d: string) => {
      u.buffer += d;
      const parts = u.buffer.split('\r\n');
      u.buffer = parts.pop()!;
      for (const l of parts) {
        if (l.startsWith('PING')) u.write(`PONG ${l.slice(5)}`);
        u.lines.push(l);
      }
    });
    u.write('CAP LS 302');
    u.write('CAP REQ :message-tags');
    u.write('CAP END');
    u.write(`NICK ${nick}`);
    u.write(`USER ${nick} 0 * :${nick}`);
    await eventually(async () => u.lines.some((l) => / 001 /.test(l)), `${nick} registered`);
    u.write(`JOIN ${channel}`);
    await eventually(async () => u.lines.some((l) => l.includes(` JOIN ${channel}`) || l.includes(` JOIN :${channel}`)), `${nick} in ${channel}`);
    return u;
  }

  write(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  close(): void {
    this.socket.destroy();
  }
}

async function typingOf(f: BridgeFixture, user: TestUser, roomId: string): Promise<string[]> {
  const r = await api(f.hs, user, 'GET', `/_matrix/client/v3/sync?timeout=0&filter=${enc(JSON.stringify({ room: { timeline: { limit: 0 }, state: { lazy_load_members: true } } }))}`);
  const eph = (r.rooms?.join?.[roomId]?.ephemeral?.events ?? []) as Array<{ type: string; content: { user_ids?: string[] } }>;
  return eph.find((e) => e.type === 'm.typing')?.content.user_ids ?? [];
}

// Reactions and redactions read as one line on any network; typing travels as IRCv3 +typing where offered.
describe('IRC bridge: reactions, redactions and typing on ngircd (plain text)', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let bob: IrcUser;
  let roomId: string;

  beforeAll(async () => {
    f = await startBridgeFixture();
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#react');
    roomId = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_react:localhost')}`, {})).room_id;
    await bob.waitFor((e) => e.kind === 'join' && e.nick === 'Alice[m]', 'Alice[m] on IRC');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('a reaction is one ACTION line: the emoji, who, and a short quote', async () => {
    await bob.say('#react', 'shall we ship the release on friday afternoon, everyone?');
    const original = await eventually(async () => {
      const r = await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=20`);
      return (r.chunk as Array<{ event_id: string; sender: string; type: string }>).find((e) => e.sender === ghost('bob') && e.type === 'm.room.message');
    }, 'bob’s message in Matrix');
    const mark = bob.mark();
    await api(f.hs, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.reaction/r1`, { 'm.relates_to': { rel_type: 'm.annotation', event_id: original.event_id, key: '👍' } });
    const line = await bob.waitFor((e) => e.kind === 'action' && e.from === 'Alice[m]', 'the reaction line', undefined, mark);
    expect(line.text).toBe('reacted 👍 to <bob> "shall we ship the release on friday aft…"');
  });

  it('a redaction of a recent message is a short note', async () => {
    const mark = bob.mark();
    const eventId = await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'oops, wrong channel' });
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'oops, wrong channel', 'the message', undefined, mark);
    await api(f.hs, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/redact/${enc(eventId)}/x1`, { reason: 'mistake' });
    const note = await bob.waitFor((e) => e.kind === 'action' && e.from === 'Alice[m]' && (e.text ?? '').startsWith('deleted'), 'the redaction note', undefined, mark);
    expect(note.text).toBe('deleted their message: "oops, wrong channel"');
  });

  it('typing sends nothing to a network without message-tags', async () => {
    const mark = bob.mark();
    await api(f.hs, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 5000 });
    await api(f.hs, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: false });
    // A message after the typing shows the typing left no trace before it.
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'after typing' });
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'after typing', 'the message', undefined, mark);
    expect(bob.events.slice(mark).filter((e) => e.from === 'Alice[m]').map((e) => e.text)).toEqual(['after typing']);
  });
});

const missing = inspircdMissing();
describe.skipIf(missing !== undefined)(`IRC bridge: IRCv3 +typing on InspIRCd with message-tags${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let carol: TaggedIrcUser;
  let roomId: string;

  beforeAll(async () => {
    f = await startBridgeFixture({ ircServer: () => startInspircd({ messageTags: true }) });
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    carol = await TaggedIrcUser.connect(f.irc.port, 'carol', '#tags');
    roomId = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_tags:localhost')}`, {})).room_id;
    await eventually(async () => carol.lines.some((l) => /:Alice\[m\]!\S+ JOIN :?#tags/.test(l)), 'Alice[m] on IRC');
  });

  afterAll(async () => {
    carol?.close();
    await f?.close();
  });

  it('Matrix typing becomes +typing=active, then +typing=done, from the user’s own connection', async () => {
    await api(f.hs, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 20000 });
    await eventually(async () => carol.lines.some((l) => /^@\S*\+typing=active\S* :Alice\[m\]!\S+ TAGMSG :?#tags$/.test(l)), '+typing=active');
    await api(f.hs, alice, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: false });
    await eventually(async () => carol.lines.some((l) => /^@\S*\+typing=done\S* :Alice\[m\]!\S+ TAGMSG :?#tags$/.test(l)), '+typing=done');
  });

  it('an IRC user’s +typing makes their ghost type in the portal, and tagged lines still bridge', async () => {
    carol.write('@+typing=active TAGMSG #tags');
    await eventually(async () => (await typingOf(f, alice, roomId)).includes(ghost('carol')), 'carol’s ghost typing');
    carol.write('@+typing=done TAGMSG #tags');
    await eventually(async () => !(await typingOf(f, alice, roomId)).includes(ghost('carol')), 'carol’s ghost done typing');
    carol.write('PRIVMSG #tags :a tagged line arrives whole');
    await eventually(async () => {
      const r = await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=20`);
      return (r.chunk as Array<{ sender: string; content: { body?: string } }>).some((e) => e.sender === ghost('carol') && e.content.body === 'a tagged line arrives whole');
    }, 'carol’s line in Matrix');
  });
});
