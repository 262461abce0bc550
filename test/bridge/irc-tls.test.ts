import { afterAll, beforeAll, describe, it } from 'vitest';
import type { TestUser } from '../helpers/users.js';
import { api, enc, matrixUser, NETWORK, sendMessage, startBridgeFixture, waitForEvent, type BridgeFixture } from './helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

// The bridge reaching an IRC network over TLS, verifying the server's certificate against a configured CA.
describe('IRC bridge over TLS', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let bob: IrcUser;

  beforeAll(async () => {
    f = await startBridgeFixture({ ircTls: true });
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#tls');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('carries messages both ways through TLS connections', async () => {
    const roomId = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_tls:localhost')}`, {})).room_id;
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'over TLS' });
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === 'over TLS', 'the message from Matrix');
    await bob.say('#tls', 'plain side here');
    await waitForEvent(f.hs, alice, roomId, (e) => e.sender === `@irc_${NETWORK}_bob:localhost` && e.content?.body === 'plain side here', 'the message from IRC');
  });
});
