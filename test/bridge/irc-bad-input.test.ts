import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestUser } from '../helpers/users.js';
import { api, enc, matrixUser, NETWORK, sendMessage, startBridgeFixture, waitForEvent, type BridgeFixture } from './helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

// Hostile or odd input from either side is bridged or refused, and the bridge keeps working after it.
describe('IRC bridge: bad input from IRC and from Matrix', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let bob: IrcUser;
  let roomId: string;
  const ghost = (nick: string) => `@irc_${NETWORK}_${nick.toLowerCase()}:localhost`;
  /** Raw bytes as an IRC client that is not UTF-8 clean would send them. */
  const rawIrc = (lines: Buffer[]) =>
    new Promise<void>((resolve, reject) => {
      const s = connect(f.irc.port, '127.0.0.1', () => {
        s.write('NICK latin\r\nUSER latin 0 * :latin\r\n');
        setTimeout(() => {
          s.write('JOIN #bad\r\n');
          setTimeout(() => {
            for (const l of lines) s.write(Buffer.concat([l, Buffer.from('\r\n')]));
            setTimeout(() => (s.end(), resolve()), 500);
          }, 500);
        }, 1000);
      });
      s.on('error', reject);
    });

  beforeAll(async () => {
    f = await startBridgeFixture();
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    // An IRC user holds Alice's nick first: her connection must pick another.
    bob = await connectIrcUser(f.irc, 'Alice[m]');
    await bob.join('#bad');
    roomId = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_bad:localhost')}`, {})).room_id;
    await bob.waitFor((e) => e.kind === 'join' && e.channel === '#bad' && e.nick !== 'Alice[m]' && (e.nick ?? '').startsWith('Alice'), 'Alice on IRC under another nick');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('from IRC: Latin-1 bytes, control bytes, a CTCP flood and an over-long line', async () => {
    await rawIrc([Buffer.from('PRIVMSG #bad :caf\xe9 cr\xe8me', 'latin1'), Buffer.from('PRIVMSG #bad :nul\x00 and bell\x07')]);
    await waitForEvent(f.hs, alice, roomId, (e) => e.sender === ghost('latin') && e.content?.body === 'café crème', 'the Latin-1 line, decoded');
    for (let i = 0; i < 30; i++) await bob.send('PRIVMSG', '#bad', '\x01VERSION\x01');
    await bob.say('#bad', 'x'.repeat(2000));
    await bob.say('#bad', 'still here after all that');
    await waitForEvent(f.hs, alice, roomId, (e) => e.sender !== alice.userId && e.content?.body === 'still here after all that', 'a normal line afterwards');
  });

  it('from Matrix: a huge message, an unknown msgtype and malformed HTML', async () => {
    const mark = bob.mark();
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'word '.repeat(12_000) });
    await bob.waitFor((e) => e.kind === 'message' && (e.text ?? '').includes('more lines'), 'the huge message cut with a link', undefined, mark);
    await sendMessage(f.hs, alice, roomId, { msgtype: 'org.example.weird', body: 'an odd msgtype' });
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'an odd msgtype', 'the unknown msgtype as text', undefined, mark);
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'broken html', format: 'org.matrix.custom.html', formatted_body: '<b><i>broken <a href="x">html<script>alert(1)</script' });
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 12345, format: 'org.matrix.custom.html', formatted_body: { not: 'a string' } });
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'after the bad ones' });
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'after the bad ones', 'a normal message afterwards', undefined, mark);
    const lines = bob.events.slice(mark).filter((e) => e.kind === 'message').map((e) => e.text ?? '');
    expect(lines.some((l) => l.includes('broken') && !l.includes('<script'))).toBe(true);
  });
});
