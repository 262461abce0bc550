import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPdu } from '../../src/rooms/eventFormat.js';
import { getRoomVersion } from '../../src/rooms/roomVersions.js';
import type { Pdu } from '../../src/types/pdu.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// The rooms core as federation uses it, with events carried between two real servers by hand: what a
// resident server offers (templates, state, auth chains) and what it accepts or refuses from another.
describe.each(testDialects())('events from other servers on %s', (dialect) => {
  let a: TestServer;
  let b: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;

  const stored = async (server: TestServer, eventId: string) => (await server.hs.services.rooms.events.get(server.hs.services.db.knex, eventId))!;

  /** Carries a local event of `from` to `to`, as a /send transaction would. */
  async function carry(from: TestServer, to: TestServer, eventId: string) {
    const ev = await stored(from, eventId);
    return (await to.hs.services.rooms.acceptRemoteEvents(roomId, [{ pdu: ev.pdu, eventId }]))[0]!;
  }

  /** Builds and signs an event on server `on` from a template of the resident server, as a joining server does. */
  function signTemplate(on: TestServer, template: Record<string, unknown>, roomVersion: string): { pdu: Pdu; eventId: string } {
    const version = getRoomVersion(roomVersion)!;
    const t = template as unknown as { room_id: string; sender: string; type: string; state_key: string; content: Record<string, unknown>; prev_events: string[]; auth_events: string[]; depth: number; origin_server_ts: number };
    return buildPdu({ ...t }, version, { serverName: on.serverName, key: on.hs.services.signingKey });
  }

  const timelineBodies = async (server: TestServer, user: TestUser) => {
    const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`, { token: user.accessToken });
    return res.body.chunk.filter((e: { type: string }) => e.type === 'm.room.message').map((e: { content: { body: string } }) => e.content.body);
  };

  beforeAll(async () => {
    a = await startHomeserver({ dialect, serverName: 'a.test' });
    b = await startHomeserver({ dialect, serverName: 'b.test' });
    alice = await registerUser(a.baseUrl, 'alice');
    bob = await registerUser(b.baseUrl, 'bob');
    const created = await request(b.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat', name: 'Over there' } });
    roomId = created.body.room_id;
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('lets a user of another server join through a template, and imports the room on the joining server', async () => {
    const tpl = await b.hs.services.rooms.joinTemplate(roomId, alice.userId, 'join');
    const join = signTemplate(a, tpl.event, tpl.room_version);
    const [outcome] = await b.hs.services.rooms.acceptRemoteEvents(roomId, [join]);
    expect(outcome!.outcome).toBe('accepted');
    const { state, authChain } = await b.hs.services.rooms.stateAndAuthChain(roomId, join.eventId);
    await a.hs.services.rooms.importJoinedRoom({ roomId, roomVersion: tpl.room_version, state, authChain, joinEvent: join.pdu, joinEventId: join.eventId });

    const members = await request(b.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`, { token: bob.accessToken });
    expect(Object.keys(members.body.joined).sort()).toEqual([alice.userId, bob.userId].sort());
    const name = await request(a.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.name/`, { token: alice.accessToken });
    expect(name.body).toEqual({ name: 'Over there' });
    const sync = await request(a.baseUrl, 'GET', '/_matrix/client/v3/sync?timeout=0', { token: alice.accessToken });
    expect(Object.keys(sync.body.rooms.join)).toContain(roomId);
  });

  it('accepts messages both ways and shows them to local users', async () => {
    const fromBob = await request(b.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/b1`, {
      token: bob.accessToken,
      body: { msgtype: 'm.text', body: 'hello from b' },
    });
    expect((await carry(b, a, fromBob.body.event_id)).outcome).toBe('accepted');
    const fromAlice = await request(a.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/a1`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body: 'hello from a' },
    });
    expect((await carry(a, b, fromAlice.body.event_id)).outcome).toBe('accepted');
    expect(await timelineBodies(a, alice)).toEqual(['hello from a', 'hello from b']);
    expect(await timelineBodies(b, bob)).toEqual(['hello from a', 'hello from b']);
    // The same event twice is one event.
    expect((await carry(a, b, fromAlice.body.event_id)).outcome).toBe('duplicate');
  });

  it('refuses an event the auth rules forbid, and keeps it away from clients', async () => {
    const tpl = await b.hs.services.rooms.joinTemplate(roomId, alice.userId, 'join');
    // Alice (power 0) tries to change the power levels through an event her server built.
    const version = getRoomVersion(tpl.room_version)!;
    const t = tpl.event as { prev_events: string[]; auth_events: string[]; depth: number };
    const forged = buildPdu(
      {
        room_id: roomId,
        sender: alice.userId,
        type: 'm.room.power_levels',
        state_key: '',
        content: { users: { [alice.userId]: 100 } },
        prev_events: t.prev_events,
        auth_events: t.auth_events,
        depth: t.depth,
        origin_server_ts: Date.now(),
      },
      version,
      { serverName: a.serverName, key: a.hs.services.signingKey },
    );
    const [outcome] = await b.hs.services.rooms.acceptRemoteEvents(roomId, [forged]);
    expect(outcome!.outcome).toBe('rejected');
    const power = await request(b.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`, { token: bob.accessToken });
    expect(power.body.users[alice.userId]).toBeUndefined();
  });

  it('moves an event it first stored as an outlier into the timeline when it arrives as a PDU', async () => {
    const sent = await request(b.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/b-outlier`, {
      token: bob.accessToken,
      body: { msgtype: 'm.text', body: 'first seen as an outlier' },
    });
    const ev = await stored(b, sent.body.event_id);
    await a.hs.services.rooms.storeOutliers(roomId, [{ pdu: ev.pdu, eventId: sent.body.event_id }]);
    expect(await timelineBodies(a, alice)).not.toContain('first seen as an outlier');
    expect((await carry(b, a, sent.body.event_id)).outcome).toBe('accepted');
    expect(await timelineBodies(a, alice)).toContain('first seen as an outlier');
  });

  it('merges concurrent events from both servers and both end with the same current state', async () => {
    const promote = await request(b.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`, {
      token: bob.accessToken,
      body: { ...(await request(b.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.power_levels/`, { token: bob.accessToken })).body, users: { [bob.userId]: 100, [alice.userId]: 50 } },
    });
    expect((await carry(b, a, promote.body.event_id)).outcome).toBe('accepted');
    // Both servers change the topic from the same point in the room, before hearing of each other.
    const topicB = await request(b.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`, { token: bob.accessToken, body: { topic: 'from b' } });
    const topicA = await request(a.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`, { token: alice.accessToken, body: { topic: 'from a' } });
    expect(topicA.status).toBe(200);
    // Now each learns of the other's change.
    expect((await carry(b, a, topicB.body.event_id)).outcome).toBe('accepted');
    expect((await carry(a, b, topicA.body.event_id)).outcome).toBe('accepted');
    const topicOn = async (server: TestServer, user: TestUser) =>
      (await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.topic/`, { token: user.accessToken })).body.topic;
    const onA = await topicOn(a, alice);
    const onB = await topicOn(b, bob);
    expect(onA).toBe(onB);
    // The next local event on either side references both branches.
    const next = await request(a.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/a2`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body: 'after the fork' },
    });
    const pdu = (await stored(a, next.body.event_id)).pdu;
    expect(pdu.prev_events.length).toBe(2);
    expect((await carry(a, b, next.body.event_id)).outcome).toBe('accepted');
  });
});
