import { Direction, type MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

describe.each(testDialects())('rooms on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let aliceClient: MatrixClient;
  let bobClient: MatrixClient;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    aliceClient = sdkClient(server.baseUrl, alice);
    bobClient = sdkClient(server.baseUrl, bob);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('creates a room with name, topic and alias, and others can join by alias', async () => {
    const { room_id } = await aliceClient.createRoom({ name: 'Garden', topic: 'Plants', room_alias_name: 'garden', preset: 'public_chat' as never });
    expect(room_id).toMatch(/^!.+:localhost$/);
    expect(await aliceClient.getStateEvent(room_id, 'm.room.name', '')).toEqual({ name: 'Garden' });
    expect(await aliceClient.getStateEvent(room_id, 'm.room.topic', '')).toEqual({ topic: 'Plants' });
    const create = await aliceClient.getStateEvent(room_id, 'm.room.create', '');
    expect(create.room_version).toBe('10');

    const joined = await bobClient.joinRoom('#garden:localhost');
    expect(joined.roomId).toBe(room_id);
    const members = await aliceClient.getJoinedRoomMembers(room_id);
    expect(Object.keys(members.joined).sort()).toEqual([alice.userId, bob.userId].sort());
  });

  it('refuses to join an invite-only room without an invite, and allows it after one', async () => {
    const { room_id } = await aliceClient.createRoom({ preset: 'private_chat' as never });
    const denied = await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(room_id)}`, { token: bob.accessToken, body: {} });
    expect(denied.status).toBe(403);
    expect(denied.body.errcode).toBe('M_FORBIDDEN');

    await aliceClient.invite(room_id, bob.userId);
    const invited = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/members?membership=invite`, { token: alice.accessToken });
    expect(invited.body.chunk.map((e: { state_key: string }) => e.state_key)).toEqual([bob.userId]);
    await bobClient.joinRoom(room_id);
    expect((await bobClient.getJoinedRooms()).joined_rooms).toContain(room_id);
  });

  it('sends messages, is idempotent per transaction id, and paginates both ways', async () => {
    const { room_id } = await aliceClient.createRoom({});
    const ids: string[] = [];
    for (let i = 0; i < 15; i++) ids.push((await aliceClient.sendTextMessage(room_id, `msg ${i}`)).event_id);

    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/send/m.room.message/txn-fixed`;
    const a = await request(server.baseUrl, 'PUT', path, { token: alice.accessToken, body: { msgtype: 'm.text', body: 'once' } });
    const b = await request(server.baseUrl, 'PUT', path, { token: alice.accessToken, body: { msgtype: 'm.text', body: 'once' } });
    expect(a.status).toBe(200);
    expect(b.body.event_id).toBe(a.body.event_id);

    const page1 = await aliceClient.createMessagesRequest(room_id, null, 5, Direction.Backward);
    expect(page1.chunk.map((e) => e.content.body)).toEqual(['once', 'msg 14', 'msg 13', 'msg 12', 'msg 11']);
    const page2 = await aliceClient.createMessagesRequest(room_id, page1.end!, 5, Direction.Backward);
    expect(page2.chunk.map((e) => e.content.body)).toEqual(['msg 10', 'msg 9', 'msg 8', 'msg 7', 'msg 6']);
    const forward = await aliceClient.createMessagesRequest(room_id, page2.end!, 3, Direction.Forward);
    expect(forward.chunk.map((e) => e.content.body)).toEqual(['msg 6', 'msg 7', 'msg 8']);

    const filtered = await request(
      server.baseUrl,
      'GET',
      `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/messages?dir=b&limit=50&filter=${encodeURIComponent(JSON.stringify({ types: ['m.room.create'] }))}`,
      { token: alice.accessToken },
    );
    expect(filtered.body.chunk.map((e: { type: string }) => e.type)).toEqual(['m.room.create']);

    const ctx = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/context/${encodeURIComponent(ids[7]!)}?limit=4`, { token: alice.accessToken });
    expect(ctx.status).toBe(200);
    expect(ctx.body.event.content.body).toBe('msg 7');
    expect(ctx.body.events_before.map((e: { content: { body: string } }) => e.content.body)).toEqual(['msg 6', 'msg 5']);
    expect(ctx.body.events_after.map((e: { content: { body: string } }) => e.content.body)).toEqual(['msg 8', 'msg 9']);
  });

  it('refuses to send into a room the user has not joined', async () => {
    const { room_id } = await aliceClient.createRoom({});
    const res = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/send/m.room.message/t1`, {
      token: bob.accessToken,
      body: { msgtype: 'm.text', body: 'hi' },
    });
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe('M_FORBIDDEN');
  });

  it('redacts a message so that its content is gone for readers', async () => {
    const { room_id } = await aliceClient.createRoom({ preset: 'public_chat' as never });
    await bobClient.joinRoom(room_id);
    const { event_id } = await bobClient.sendTextMessage(room_id, 'secret');
    const redaction = await aliceClient.redactEvent(room_id, event_id, undefined, { reason: 'spam' });
    const ev = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/event/${encodeURIComponent(event_id)}`, { token: bob.accessToken });
    expect(ev.body.content).toEqual({});
    expect(ev.body.unsigned.redacted_because.content.reason).toBe('spam');
    expect(ev.body.unsigned.redacted_by).toBe(redaction.event_id);
  });

  it('lets a user without power neither redact others nor change power levels', async () => {
    const { room_id } = await aliceClient.createRoom({ preset: 'public_chat' as never });
    await bobClient.joinRoom(room_id);
    const { event_id } = await aliceClient.sendTextMessage(room_id, 'mine');
    await expect(bobClient.redactEvent(room_id, event_id)).rejects.toMatchObject({ errcode: 'M_FORBIDDEN' });
    await expect(bobClient.sendStateEvent(room_id, 'm.room.power_levels' as never, { users: { [bob.userId]: 100 } } as never, '')).rejects.toMatchObject({
      errcode: 'M_FORBIDDEN',
    });
  });

  it('kicks, bans and unbans', async () => {
    const { room_id } = await aliceClient.createRoom({ preset: 'public_chat' as never });
    await bobClient.joinRoom(room_id);
    await aliceClient.kick(room_id, bob.userId, 'bye');
    let m = await aliceClient.getStateEvent(room_id, 'm.room.member', bob.userId);
    expect(m).toMatchObject({ membership: 'leave', reason: 'bye' });
    await bobClient.joinRoom(room_id);
    await aliceClient.ban(room_id, bob.userId);
    await expect(bobClient.joinRoom(room_id)).rejects.toMatchObject({ errcode: 'M_FORBIDDEN' });
    await aliceClient.unban(room_id, bob.userId);
    m = await aliceClient.getStateEvent(room_id, 'm.room.member', bob.userId);
    expect(m.membership).toBe('leave');
    await bobClient.joinRoom(room_id);
  });

  it('hides history from before the join when visibility is joined', async () => {
    const { room_id } = await aliceClient.createRoom({
      preset: 'public_chat' as never,
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }],
    });
    await aliceClient.sendTextMessage(room_id, 'before bob');
    await bobClient.joinRoom(room_id);
    await aliceClient.sendTextMessage(room_id, 'after bob');
    const page = await bobClient.createMessagesRequest(room_id, null, 50, Direction.Backward);
    const bodies = page.chunk.map((e) => e.content.body).filter(Boolean);
    expect(bodies).toEqual(['after bob']);
  });

  it('propagates display names into member events', async () => {
    const { room_id } = await aliceClient.createRoom({});
    await aliceClient.setDisplayName('Alice A.');
    const member = await aliceClient.getStateEvent(room_id, 'm.room.member', alice.userId);
    expect(member.displayname).toBe('Alice A.');
    expect((await aliceClient.getProfileInfo(alice.userId)).displayname).toBe('Alice A.');
  });

  it('creates rooms of every supported version', async () => {
    for (const v of ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11']) {
      const { room_id } = await aliceClient.createRoom({ room_version: v, preset: 'public_chat' as never });
      await bobClient.joinRoom(room_id);
      const { event_id } = await bobClient.sendTextMessage(room_id, `in v${v}`);
      expect(event_id.startsWith('$')).toBe(true);
      const create = await aliceClient.getStateEvent(room_id, 'm.room.create', '');
      expect(create.room_version).toBe(v);
    }
    const bad = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { room_version: '99' } });
    expect(bad.status).toBe(400);
    expect(bad.body.errcode).toBe('M_UNSUPPORTED_ROOM_VERSION');
  });

  it('references earlier events by id and content hash in version 1 rooms', async () => {
    const { room_id } = await aliceClient.createRoom({ room_version: '1' });
    const { event_id } = await aliceClient.sendTextMessage(room_id, 'old format');
    const { events } = server.hs.services.rooms;
    const sent = (await events.get(server.hs.services.db.knex, event_id))!.pdu;
    expect(sent.event_id).toBe(event_id);
    const refs = [...sent.prev_events, ...sent.auth_events] as Array<[string, { sha256: string }]>;
    expect(refs.length).toBeGreaterThan(1);
    for (const [id, hashes] of refs) {
      const referenced = (await events.get(server.hs.services.db.knex, id))!.pdu;
      expect(hashes.sha256).toBe(referenced.hashes.sha256);
    }
  });

  it('manages aliases and directory visibility', async () => {
    const { room_id } = await aliceClient.createRoom({});
    await aliceClient.createAlias('#extra:localhost', room_id);
    expect((await aliceClient.getRoomIdForAlias('#extra:localhost')).room_id).toBe(room_id);
    const dup = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/directory/room/${encodeURIComponent('#extra:localhost')}`, { token: alice.accessToken, body: { room_id } });
    expect(dup.status).toBe(409);
    expect((await aliceClient.getLocalAliases(room_id)).aliases).toEqual(['#extra:localhost']);
    await aliceClient.deleteAlias('#extra:localhost');
    const gone = await request(server.baseUrl, 'GET', `/_matrix/client/v3/directory/room/${encodeURIComponent('#extra:localhost')}`);
    expect(gone.status).toBe(404);
    await aliceClient.setRoomDirectoryVisibility(room_id, 'public' as never);
    expect((await aliceClient.getRoomDirectoryVisibility(room_id)).visibility).toBe('public');
  });

  it('treats setting identical state twice as one event', async () => {
    const { room_id } = await aliceClient.createRoom({});
    const a = await aliceClient.sendStateEvent(room_id, 'm.room.topic' as never, { topic: 'same' } as never, '');
    const b = await aliceClient.sendStateEvent(room_id, 'm.room.topic' as never, { topic: 'same' } as never, '');
    expect(b.event_id).toBe(a.event_id);
  });

  it('lets members set a room-specific display name through the state endpoint', async () => {
    const { room_id } = await aliceClient.createRoom({ preset: 'public_chat' as never });
    await bobClient.joinRoom(room_id);
    await bobClient.sendStateEvent(room_id, 'm.room.member' as never, { membership: 'join', displayname: 'Bob in here' } as never, bob.userId);
    const members = await aliceClient.getJoinedRoomMembers(room_id);
    expect(members.joined[bob.userId]?.display_name).toBe('Bob in here');
    // Nobody may set someone else's join.
    await expect(
      aliceClient.sendStateEvent(room_id, 'm.room.member' as never, { membership: 'join', displayname: 'fake' } as never, bob.userId),
    ).rejects.toMatchObject({ errcode: 'M_FORBIDDEN' });
  });

  it('accepts a canonical alias only when it points at the room', async () => {
    const { room_id } = await aliceClient.createRoom({});
    const other = await aliceClient.createRoom({});
    await aliceClient.createAlias('#canon:localhost', room_id);
    await aliceClient.createAlias('#elsewhere:localhost', other.room_id);
    await aliceClient.sendStateEvent(room_id, 'm.room.canonical_alias' as never, { alias: '#canon:localhost' } as never, '');
    const wrong = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/state/m.room.canonical_alias/`, {
      token: alice.accessToken,
      body: { alias: '#canon:localhost', alt_aliases: ['#elsewhere:localhost'] },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.errcode).toBe('M_BAD_ALIAS');
  });

  // SyTest "Can delete canonical alias": deleting the alias takes it out of m.room.canonical_alias, as Synapse.
  it('deleting an alias removes it from the canonical alias event (alias and alt_aliases)', async () => {
    const { room_id } = await aliceClient.createRoom({});
    await aliceClient.createAlias('#gone:localhost', room_id);
    await aliceClient.createAlias('#stays:localhost', room_id);
    await aliceClient.sendStateEvent(room_id, 'm.room.canonical_alias' as never, { alias: '#gone:localhost', alt_aliases: ['#stays:localhost', '#gone:localhost'] } as never, '');
    const del = await request(server.baseUrl, 'DELETE', `/_matrix/client/v3/directory/room/${encodeURIComponent('#gone:localhost')}`, { token: alice.accessToken, body: {} });
    expect(del.status).toBe(200);
    expect(await aliceClient.getStateEvent(room_id, 'm.room.canonical_alias', '')).toEqual({ alt_aliases: ['#stays:localhost'] });
  });

  // SyTest "PUT /redact disallows redaction of event in different room": 400, as Synapse.
  it('refuses to redact an event of another room with 400', async () => {
    const first = await aliceClient.createRoom({});
    const second = await aliceClient.createRoom({});
    const { event_id } = await aliceClient.sendTextMessage(first.room_id, 'elsewhere');
    const res = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(second.room_id)}/redact/${encodeURIComponent(event_id)}/txn-x`, {
      token: alice.accessToken,
      body: {},
    });
    expect(res.status).toBe(400);
  });

  it('forgets a room only after leaving, and then hides its history', async () => {
    const { room_id } = await aliceClient.createRoom({ preset: 'public_chat' as never });
    await bobClient.joinRoom(room_id);
    await aliceClient.sendTextMessage(room_id, 'hello');
    const stillIn = await request(server.baseUrl, 'POST', `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/forget`, { token: bob.accessToken, body: {} });
    expect(stillIn.status).toBe(400);
    await bobClient.leave(room_id);
    const departed = await bobClient.createMessagesRequest(room_id, null, 10, Direction.Backward);
    expect(departed.chunk.some((e) => e.content.body === 'hello')).toBe(true);
    await bobClient.forget(room_id);
    const after = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/messages?dir=b`, { token: bob.accessToken });
    expect(after.status).toBe(403);
    await bobClient.joinRoom(room_id);
    expect((await bobClient.getJoinedRooms()).joined_rooms).toContain(room_id);
  });

  it('copies custom keys of a join body into the member event, never the server-decided ones (spec: POST /join)', async () => {
    const { room_id } = await aliceClient.createRoom({ preset: 'public_chat' as never });
    const body = { foo: 'bar', reason: 'hi', displayname: 'fake', join_authorised_via_users_server: alice.userId };
    const res = await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(room_id)}`, { token: bob.accessToken, body });
    expect(res.status).toBe(200);
    const member = await aliceClient.getStateEvent(room_id, 'm.room.member', bob.userId);
    expect(member).toMatchObject({ membership: 'join', reason: 'hi', foo: 'bar' });
    expect(member.displayname).not.toBe('fake');
    expect(member).not.toHaveProperty('join_authorised_via_users_server');
  });

  it('answers bad input with spec errors', async () => {
    const { room_id } = await aliceClient.createRoom({});
    const notJson = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/send/m.room.message/t2`, {
      token: alice.accessToken,
      rawBody: '{not json',
      headers: { 'content-type': 'application/json' },
    });
    expect(notJson.status).toBe(400);
    expect(notJson.body.errcode).toBe('M_NOT_JSON');
    const unknownRoom = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent('!nope:localhost')}/send/m.room.message/t3`, {
      token: alice.accessToken,
      body: { body: 'x' },
    });
    expect([403, 404]).toContain(unknownRoom.status);
    const noToken = await request(server.baseUrl, 'GET', '/_matrix/client/v3/joined_rooms');
    expect(noToken.status).toBe(401);
    expect(noToken.body.errcode).toBe('M_MISSING_TOKEN');
    const badToken = await request(server.baseUrl, 'GET', '/_matrix/client/v3/joined_rooms', { token: 'nonsense' });
    expect(badToken.status).toBe(401);
    expect(badToken.body.errcode).toBe('M_UNKNOWN_TOKEN');
    const wrongType = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { name: 42 } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.errcode).toBe('M_BAD_JSON');
    const tooBig = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(room_id)}/send/m.room.message/t4`, {
      token: alice.accessToken,
      body: { body: 'x'.repeat(70000) },
    });
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.errcode).toBe('M_TOO_LARGE');
  });
});
