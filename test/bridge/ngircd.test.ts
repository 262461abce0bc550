import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNgircd, type IrcTestServer } from './helpers/ngircd.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

describe('IRC test harness (ngircd + real IRC users)', () => {
  let server: IrcTestServer;
  const users: IrcUser[] = [];

  async function user(nick: string): Promise<IrcUser> {
    const u = await connectIrcUser(server, nick);
    users.push(u);
    return u;
  }

  beforeAll(async () => {
    server = await startNgircd();
  });

  afterAll(async () => {
    await Promise.all(users.map((u) => u.disconnect()));
    await server?.close();
  });

  it('carries channel messages, actions and private messages between two users', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    expect(alice.nick).toBe('alice');

    await alice.join('#Harness');
    await bob.join('#harness');
    await alice.waitFor((e) => e.kind === 'join' && e.nick === 'bob' && e.channel === '#harness', 'join of bob');
    // ngircd makes a channel's creator its operator.
    expect(alice.client.chanData('#harness')?.users.get('alice')).toBe('@');
    expect((await bob.names('#harness')).sort()).toEqual(['alice', 'bob']);

    const mark = bob.mark();
    await alice.say('#harness', 'hello from alice');
    const msg = await bob.waitFor((e) => e.kind === 'message' && e.channel === '#harness', 'channel message', 15_000, mark);
    expect(msg).toMatchObject({ from: 'alice', to: '#harness', text: 'hello from alice' });

    await bob.action('#harness', 'waves');
    const action = await alice.waitFor((e) => e.kind === 'action', 'action');
    expect(action).toMatchObject({ from: 'bob', channel: '#harness', text: 'waves' });

    await alice.say('bob', 'psst, just you');
    const pm = await bob.waitFor((e) => e.kind === 'message' && e.to === 'bob', 'private message');
    expect(pm).toMatchObject({ from: 'alice', text: 'psst, just you' });
    expect(pm.channel).toBeUndefined();
  });

  it('sees nick changes, refuses taken nicks and allows 30-character nicks', async () => {
    const carol = await user('carol');
    const dave = await user('dave');
    await carol.join('#nicks');
    await dave.join('#nicks');

    await dave.changeNick('david');
    expect(dave.nick).toBe('david');
    const change = await carol.waitFor((e) => e.kind === 'nick' && e.nick === 'dave', 'nick change of dave');
    expect(change.newNick).toBe('david');
    expect(await carol.whoisExists('david')).toBe(true);
    expect(await carol.whoisExists('dave')).toBe(false);

    await expect(dave.changeNick('carol')).rejects.toThrow(/err_nicknameinuse/);
    expect(dave.nick).toBe('david');
    await expect(connectIrcUser(server, 'carol')).rejects.toThrow(/err_nicknameinuse/);

    const long = 'x'.repeat(30);
    await dave.changeNick(long);
    expect(await carol.names('#nicks')).toContain(long);
  });

  it('restarts on the same port: old connections drop, new users can connect', async () => {
    const port = server.port;
    const erin = await user('erin');
    const mark = erin.mark();

    await server.restart();
    expect(server.port).toBe(port);
    await erin.waitFor((e) => e.kind === 'disconnect', 'disconnect on restart', 15_000, mark);
    await expect(erin.join('#after')).rejects.toThrow(/not connected/);

    const frank = await user('frank');
    await frank.join('#after');
    expect(await frank.names('#after')).toEqual(['frank']);
    expect(await frank.whoisExists('erin')).toBe(false);
  });
});
