import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, matrixUser, NETWORK, startBridgeFixture, timeline, type BridgeFixture } from './helpers/bridgeFixture.js';
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
