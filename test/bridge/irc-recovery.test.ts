import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { testDialects } from '../helpers/homeserver.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, matrixUser, NETWORK, sendMessage, startBridgeFixture, timeline, waitForEvent, type BridgeFixture } from './helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

// The bridge keeps its state in SQLite or PostgreSQL; both must survive restarts of either side.
describe.each(testDialects())('IRC bridge recovery (bridge database: %s)', (dialect) => {
  let f: BridgeFixture;
  let alice: TestUser;
  let bob: IrcUser;
  let roomId: string;
  const ghost = (nick: string) => `@irc_${NETWORK}_${nick}:localhost`;
  /** Bob says `text` (again, until the bridge is back in the channel) until it shows in the room. */
  const bobReachesMatrix = (text: string) =>
    eventually(async () => {
      await bob.say('#ops', text);
      return (await timeline(f.hs, alice, roomId)).some((e) => e.sender === ghost('bob') && e.content?.body === text);
    }, `“${text}” reaching Matrix`, 30_000);
  const fromAlice = (user: IrcUser, text: string, since = 0) => user.events.slice(since).filter((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === text);

  const hsToken = () => (parseYaml(readFileSync(f.config.appservice.registration, 'utf8')) as { hs_token: string }).hs_token;

  beforeAll(async () => {
    f = await startBridgeFixture({ bridgeDatabase: dialect, network: { flood: { burst: 3, interval_ms: 200 } } });
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#ops');
    roomId = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_ops:localhost')}`, {})).room_id;
    await bob.waitFor((e) => e.kind === 'join' && e.nick === 'Alice[m]', 'Alice[m] on IRC');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('paces a burst of Matrix messages to the flood limit, losing and reordering none', async () => {
    const mark = bob.mark();
    for (let i = 0; i < 10; i++) await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: `burst ${i}` });
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'burst 9', 'the last of the burst', 20_000, mark);
    const got = bob.events.slice(mark).filter((e) => e.kind === 'message' && e.from === 'Alice[m]');
    expect(got.map((e) => e.text)).toEqual(Array.from({ length: 10 }, (_, i) => `burst ${i}`));
    // Three at once, then one per 200 ms: the last line cannot arrive sooner than 7 intervals after the first.
    expect(got[9]!.at - got[0]!.at).toBeGreaterThanOrEqual(7 * 200 - 50);
  });

  it('after the IRC server restarts, the bridge reconnects and messages flow both ways again', async () => {
    await f.irc.restart();
    await bob.disconnect().catch(() => undefined);
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#ops');
    // Sent while the bridge may still be reconnecting: delivered once it is back.
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'after the IRC restart' });
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === 'after the IRC restart', 'the message after reconnecting', 45_000);
    await bobReachesMatrix('bob is back');
  });

  it('messages sent while the bridge is down arrive once after it restarts', async () => {
    await f.stopBridge();
    await bob.waitFor((e) => e.kind === 'quit' && e.nick === 'Alice[m]', 'the puppet leaving with the bridge');
    const mark = bob.mark();
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'while the bridge was down' });
    await f.startBridge();
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === 'while the bridge was down', 'the queued message', 30_000, mark);
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'and after' });
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === 'and after', 'a new message', 20_000, mark);
    expect(fromAlice(bob, 'while the bridge was down', mark)).toHaveLength(1);
    await bob.say('#ops', 'welcome back, bridge');
    await waitForEvent(f.hs, alice, roomId, (e) => e.sender === ghost('bob') && e.content?.body === 'welcome back, bridge', 'IRC to Matrix after the restart');
    // Nothing the bridge had already delivered was sent again.
    expect(fromAlice(bob, 'after the IRC restart')).toHaveLength(1);
  });

  it('what was said in a new DM or admin room before the bridge joined it still reaches IRC (caught up after the join)', async () => {
    await f.stopBridge();
    // The homeserver pushes a room's events only once a bridge user is in it; these come before any is.
    const dm = await api(f.hs, alice, 'POST', '/_matrix/client/v3/createRoom', { is_direct: true, invite: [ghost('bob')], preset: 'trusted_private_chat' });
    await sendMessage(f.hs, alice, dm.room_id, { msgtype: 'm.text', body: 'said before you joined' });
    const admin = await api(f.hs, alice, 'POST', '/_matrix/client/v3/createRoom', { is_direct: true, invite: ['@ircbot:localhost'], preset: 'trusted_private_chat' });
    await sendMessage(f.hs, alice, admin.room_id, { msgtype: 'm.text', body: '!whois bob' });
    const mark = bob.mark();
    await f.startBridge();
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.to === 'bob' && e.text === 'said before you joined', 'the early DM', 30_000, mark);
    await waitForEvent(f.hs, alice, admin.room_id, (e) => e.sender === '@ircbot:localhost' && /^bob is /.test(e.content?.body ?? ''), 'the answer to the early command');
    expect(bob.events.slice(mark).filter((e) => e.text === 'said before you joined')).toHaveLength(1);
  });

  it('an IRC user who left while the bridge was down is gone from the room after it restarts', async () => {
    const carol = await connectIrcUser(f.irc, 'carol');
    await carol.join('#ops');
    await eventually(async () => (await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`)).joined[ghost('carol')], 'carol’s ghost joining');
    await f.stopBridge();
    await carol.disconnect('leaving quietly');
    await f.startBridge();
    await eventually(async () => !(await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`)).joined[ghost('carol')], 'carol’s ghost leaving');
    expect((await api(f.hs, alice, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`)).joined[ghost('bob')]).toBeDefined();
  });

  it('a bridge started while the IRC server is down connects once it is back, and delivers what waited', async () => {
    await f.stopBridge();
    await f.irc.stop();
    await f.startBridge();
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'sent while IRC was down' });
    await new Promise((r) => setTimeout(r, 1500));
    await f.irc.start();
    await bob.disconnect().catch(() => undefined);
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#ops');
    await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && e.text === 'sent while IRC was down', 'the waiting message', 60_000);
    await bobReachesMatrix('IRC is back');
  });

  it('a replayed transaction is not bridged twice', async () => {
    const body = { events: [{ type: 'm.room.message', room_id: roomId, sender: alice.userId, event_id: '$replayed', origin_server_ts: Date.now(), content: { msgtype: 'm.text', body: 'replayed once' } }] };
    const token = hsToken();
    const url = `http://127.0.0.1:${f.bridge.port}/_matrix/app/v1/transactions/replay-1`;
    for (let i = 0; i < 2; i++) {
      const res = await fetch(url, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status).toBe(200);
    }
    const mark = bob.mark();
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'replayed once', 'the replayed message', 10_000, 0);
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.text', body: 'marker' });
    await bob.waitFor((e) => e.kind === 'message' && e.text === 'marker', 'the marker', 10_000, mark);
    expect(fromAlice(bob, 'replayed once')).toHaveLength(1);
  });

  it('answers the homeserver’s bad or unauthenticated calls with Matrix errors', async () => {
    const base = `http://127.0.0.1:${f.bridge.port}`;
    const noAuth = await fetch(`${base}/_matrix/app/v1/transactions/x`, { method: 'PUT', body: '{}' });
    expect(noAuth.status).toBe(401);
    expect(((await noAuth.json()) as { errcode: string }).errcode).toBe('M_UNAUTHORIZED');
    const wrong = await fetch(`${base}/_matrix/app/v1/users/${enc(ghost('bob'))}`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(403);
    expect(((await wrong.json()) as { errcode: string }).errcode).toBe('M_FORBIDDEN');
    const token = hsToken();
    const bad = await fetch(`${base}/_matrix/app/v1/transactions/y`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"events": ' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errcode: string }).errcode).toBe('M_NOT_JSON');
    const noEvents = await fetch(`${base}/_matrix/app/v1/transactions/z`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"events": 5}' });
    expect(noEvents.status).toBe(400);
    const unknownAlias = await fetch(`${base}/_matrix/app/v1/rooms/${enc('#irc_nosuchnet_x:localhost')}`, { headers: { authorization: `Bearer ${token}` } });
    expect(unknownAlias.status).toBe(404);
    expect(((await unknownAlias.json()) as { errcode: string }).errcode).toBe('M_NOT_FOUND');
  });
});
