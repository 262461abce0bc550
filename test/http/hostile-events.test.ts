import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forbidden } from '../../src/errors.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const enc = encodeURIComponent;

describe.each(testDialects())('hostile events on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  async function createRoom(user: TestUser, body: Record<string, unknown> = {}): Promise<string> {
    const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body });
    expect(res.status).toBe(200);
    return res.body.room_id;
  }

  async function timeline(user: TestUser, roomId: string): Promise<Array<{ type: string; content: Record<string, unknown>; state_key?: string }>> {
    const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=f&limit=1000`, { token: user.accessToken });
    expect(res.status).toBe(200);
    return res.body.chunk;
  }

  async function send(user: TestUser, roomId: string, txnId: string, content: unknown, rawBody?: string) {
    return request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txnId}`, {
      token: user.accessToken,
      ...(rawBody !== undefined ? { rawBody, headers: { 'content-type': 'application/json' } } : { body: content }),
    });
  }

  it('a write that fails, after writing or not, leaves no trace, and the rest of its batch commits', async () => {
    const attackRoom = await createRoom(alice);
    const victimRoom = await createRoom(bob);
    const rooms = server.hs.services.rooms;
    // A job that holds the current batch open, so everything below is committed together in the next one.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const holder = rooms.write(victimRoom, () => gate);
    const victimSend = (i: number) =>
      rooms.sendEvent({ userId: bob.userId }, victimRoom, { type: 'm.room.message', content: { msgtype: 'm.text', body: `victim ${i}` } });
    const victims = [victimSend(0), victimSend(1)];
    const failures = [
      // An unexpected error after a state event was written.
      rooms.write(attackRoom, async (ctx) => {
        await ctx.append({ type: 'org.example.crash', stateKey: '', content: { n: 1 }, sender: alice.userId });
        throw new Error('unexpected failure after a write');
      }),
      // A refusal after a state event was written.
      rooms.write(attackRoom, async (ctx) => {
        await ctx.append({ type: 'org.example.refused', stateKey: '', content: { n: 1 }, sender: alice.userId });
        throw forbidden('refused after a write');
      }),
      // A refusal after a message was appended (held back until the batch ends).
      rooms.write(attackRoom, async (ctx) => {
        await ctx.append({ type: 'm.room.message', content: { msgtype: 'm.text', body: 'never stored' }, sender: alice.userId });
        throw forbidden('refused after an append');
      }),
      // An unexpected error after a message was appended, with nothing written yet.
      rooms.write(attackRoom, async (ctx) => {
        await ctx.append({ type: 'm.room.message', content: { msgtype: 'm.text', body: 'never stored either' }, sender: alice.userId });
        throw new Error('unexpected failure before any write');
      }),
      // A failing statement, which leaves a PostgreSQL transaction unusable.
      rooms.write(attackRoom, async (_ctx, trx) => {
        await trx.raw('SELECT no_such_column FROM no_such_table');
      }),
    ];
    victims.push(victimSend(2), victimSend(3));
    const attackRoomOk = rooms.sendEvent({ userId: alice.userId }, attackRoom, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'fine' } });
    victims.push(victimSend(4));
    release();
    await holder;
    const settled = await Promise.allSettled(failures);
    expect(settled.map((s) => s.status)).toEqual(Array(5).fill('rejected'));
    expect((await Promise.allSettled(victims)).map((s) => s.status)).toEqual(Array(5).fill('fulfilled'));
    await attackRoomOk;

    for (const type of ['org.example.crash', 'org.example.refused']) {
      const state = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(attackRoom)}/state/${type}/`, { token: alice.accessToken });
      expect(state.status).toBe(404);
    }
    const attackTimeline = await timeline(alice, attackRoom);
    expect(attackTimeline.filter((e) => e.type.startsWith('org.example.') || String(e.content.body).startsWith('never stored'))).toEqual([]);
    expect(attackTimeline.filter((e) => e.content.body === 'fine')).toHaveLength(1);
    // Both rooms keep working on a consistent head.
    expect((await send(alice, attackRoom, 'after', { msgtype: 'm.text', body: 'after' })).status).toBe(200);
    expect((await send(bob, victimRoom, 'after', { msgtype: 'm.text', body: 'after' })).status).toBe(200);
    const victimBodies = (await timeline(bob, victimRoom)).filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
    expect(victimBodies).toEqual(['victim 0', 'victim 1', 'victim 2', 'victim 3', 'victim 4', 'after']);
  });

  // Raw JSON bodies: JSON.stringify cannot write these values the way an attacker does.
  const badContents: Array<[string, string]> = [
    ['a lone surrogate in a value', '{"msgtype":"m.text","body":"\\ud800"}'],
    ['a lone surrogate in a key', '{"msgtype":"m.text","body":"x","\\udc00":1}'],
    ['a float', '{"msgtype":"m.text","body":"x","n":1.5}'],
    ['1e999', '{"msgtype":"m.text","body":"x","n":1e999}'],
    ['an integer beyond 2^53-1', '{"msgtype":"m.text","body":"x","n":9007199254740992}'],
    ['nesting beyond the event limit', '{"body":"x","n":' + '['.repeat(200) + ']'.repeat(200) + '}'],
  ];

  it.each(badContents)('answers content with %s with 400 M_BAD_JSON on send and state, and stores nothing', async (_what, raw) => {
    const roomId = await createRoom(alice);
    const sent = await send(alice, roomId, `bad-${Math.random()}`, undefined, raw);
    expect(sent.status).toBe(400);
    expect(sent.body.errcode).toBe('M_BAD_JSON');
    const state = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/org.example.bad/`, {
      token: alice.accessToken,
      rawBody: raw,
      headers: { 'content-type': 'application/json' },
    });
    expect(state.status).toBe(400);
    expect(state.body.errcode).toBe('M_BAD_JSON');
    expect((await timeline(alice, roomId)).filter((e) => e.type === 'm.room.message' || e.type === 'org.example.bad')).toEqual([]);
  });

  it('answers events over the spec size limits with 413 M_TOO_LARGE', async () => {
    const roomId = await createRoom(alice);
    // Content over 65536 bytes, and content under it whose event (signatures, references) is over it.
    for (const size of [70_000, 65_400]) {
      const res = await send(alice, roomId, `big-${size}`, { msgtype: 'm.text', body: 'x'.repeat(size) });
      expect(res.status).toBe(413);
      expect(res.body.errcode).toBe('M_TOO_LARGE');
    }
    const longKey = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/org.example.key/${'é'.repeat(128)}`, {
      token: alice.accessToken,
      body: { a: 1 },
    });
    expect(longKey.status).toBe(413);
    expect(longKey.body.errcode).toBe('M_TOO_LARGE');
    const longType = await send(alice, roomId, 'long-type', { body: 'x' });
    expect(longType.status).toBe(200);
    const typeRes = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/${'t'.repeat(256)}/t1`, { token: alice.accessToken, body: {} });
    expect(typeRes.status).toBe(413);
    expect((await timeline(alice, roomId)).filter((e) => e.type === 'm.room.message').map((e) => e.content.body)).toEqual(['x']);
  });

  it('answers bodies nested 5,000 deep with 400 M_BAD_JSON, and U+0000 in ids with 400, on every door', async () => {
    const roomId = await createRoom(alice);
    const deep = '{"a":'.repeat(5000) + '1' + '}'.repeat(5000);
    const user = enc(alice.userId);
    const doors: Array<[string, string, string]> = [
      ['PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/deep1`, `{"msgtype":"m.text","body":"x","d":${deep}}`],
      ['PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/org.example.deep/`, `{"d":${deep}}`],
      ['POST', `/_matrix/client/v3/join/${enc(roomId)}`, `{"reason":"r","d":${deep}}`],
      ['POST', `/_matrix/client/v3/rooms/${enc(roomId)}/join`, `{"d":${deep}}`],
      ['PUT', `/_matrix/client/v3/user/${user}/account_data/org.example.deep`, `{"d":${deep}}`],
      ['PUT', `/_matrix/client/v3/user/${user}/rooms/${enc(roomId)}/account_data/org.example.deep`, `{"d":${deep}}`],
      ['PUT', `/_matrix/client/v3/user/${user}/rooms/${enc(roomId)}/tags/u.deep`, `{"order":0.5,"d":${deep}}`],
      ['POST', `/_matrix/client/v3/user/${user}/filter`, `{"room":{"timeline":{"limit":10}},"d":${deep}}`],
      ['POST', '/_matrix/client/v3/createRoom', `{"creation_content":{"d":${deep}}}`],
      ['POST', '/_matrix/client/v3/createRoom', `{"initial_state":[{"type":"org.example.deep","state_key":"","content":{"d":${deep}}}]}`],
    ];
    for (const [method, path, rawBody] of doors) {
      const res = await request(server.baseUrl, method, path, { token: alice.accessToken, rawBody, headers: { 'content-type': 'application/json' } });
      expect([path, res.status, res.body.errcode]).toEqual([path, 400, 'M_BAD_JSON']);
    }
    const inline = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&filter=${enc(`{"d":${'['.repeat(2000)}${']'.repeat(2000)}}`)}`, {
      token: alice.accessToken,
    });
    expect(inline.status).toBe(400);
    // U+0000 in a path or a profile field (PostgreSQL text cannot hold it) is refused before any query.
    const nulDoors: Array<[string, string, unknown]> = [
      ['PUT', `/_matrix/client/v3/user/${user}/account_data/m.%00`, { a: 1 }],
      ['GET', `/_matrix/client/v3/rooms/${enc(roomId)}/event/%24x%00`, undefined],
      ['GET', `/_matrix/client/v3/rooms/${enc(roomId)}/context/%24x%00`, undefined],
      ['PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.%00/t-nul`, { body: 'x' }],
      ['PUT', `/_matrix/client/v3/profile/${user}/displayname`, { displayname: 'a\u0000b' }],
    ];
    for (const [method, path, body] of nulDoors) {
      const res = await request(server.baseUrl, method, path, { token: alice.accessToken, body });
      expect([path, res.status]).toEqual([path, 400]);
    }
    // Everything still works for the same user afterwards.
    expect((await send(alice, roomId, 'after-deep', { msgtype: 'm.text', body: 'still here' })).status).toBe(200);
  });

  it('keeps every send of a user in another room while an attacker sends bad events', async () => {
    const attackRoom = await createRoom(alice);
    const victimRoom = await createRoom(bob);
    const attacks = [
      ...badContents.map(([, raw]) => raw),
      JSON.stringify({ msgtype: 'm.text', body: 'x'.repeat(65_400) }),
    ];
    const attackStatuses: number[] = [];
    let stop = false;
    // Several attackers, each sending one bad event after another until the victim is done.
    const attackers = Array.from({ length: 4 }, (_, a) =>
      (async () => {
        for (let i = 0; !stop; i++) {
          const res = await send(alice, attackRoom, `attack-${a}-${i}`, undefined, attacks[(a + i) % attacks.length]);
          attackStatuses.push(res.status);
        }
      })(),
    );
    const victimStatuses: number[] = [];
    const total = 150;
    for (let round = 0; round < total / 25; round++) {
      const results = await Promise.all(
        Array.from({ length: 25 }, (_, j) => send(bob, victimRoom, `v-${round}-${j}`, { msgtype: 'm.text', body: `victim ${round * 25 + j}` })),
      );
      victimStatuses.push(...results.map((r) => r.status));
    }
    stop = true;
    await Promise.all(attackers);
    expect(victimStatuses.filter((s) => s === 200)).toHaveLength(total);
    expect(attackStatuses.length).toBeGreaterThan(0);
    expect(attackStatuses.filter((s) => s !== 400 && s !== 413)).toEqual([]);
    const bodies = (await timeline(bob, victimRoom)).filter((e) => e.type === 'm.room.message').map((e) => e.content.body);
    expect(new Set(bodies)).toEqual(new Set(Array.from({ length: total }, (_, i) => `victim ${i}`)));
    expect(bodies).toHaveLength(total);
    expect((await timeline(alice, attackRoom)).filter((e) => e.type === 'm.room.message')).toEqual([]);
  });

  it('keeps custom keys of a membership body as Synapse does, but no spoofed display name, avatar or membership', async () => {
    const profile = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/profile/${enc(bob.userId)}/displayname`, {
      token: bob.accessToken,
      body: { displayname: 'Bob' },
    });
    expect(profile.status).toBe(200);
    const publicRoom = await createRoom(alice, { preset: 'public_chat' });
    const joined = await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(publicRoom)}`, {
      token: bob.accessToken,
      body: { reason: 'hello', displayname: 'Alice (admin)', avatar_url: 'mxc://evil.example/x', membership: 'ban', foo: 'bar' },
    });
    expect(joined.status).toBe(200);
    const member = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(publicRoom)}/state/m.room.member/${enc(bob.userId)}`, {
      token: alice.accessToken,
    });
    expect(member.body).toEqual({ membership: 'join', displayname: 'Bob', reason: 'hello', foo: 'bar' });
    const left = await request(server.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(publicRoom)}/leave`, {
      token: bob.accessToken,
      body: { reason: 'bye', displayname: 'Alice (admin)', membership: 'join' },
    });
    expect(left.status).toBe(200);
    const afterLeave = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(publicRoom)}/state/m.room.member/${enc(bob.userId)}`, {
      token: alice.accessToken,
    });
    expect(afterLeave.body).toEqual({ membership: 'leave', reason: 'bye' });

    // A restricted room bob may not join: naming its admin as authoriser in the body must not let him in.
    const allowRoom = await createRoom(alice);
    const restricted = await createRoom(alice, {
      room_version: '10',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: allowRoom }] } }],
    });
    const forged = await request(server.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(restricted)}/join`, {
      token: bob.accessToken,
      body: { join_authorised_via_users_server: alice.userId },
    });
    expect(forged.status).toBe(403);
    const members = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(restricted)}/joined_members`, { token: alice.accessToken });
    expect(Object.keys(members.body.joined)).toEqual([alice.userId]);
  });

  it("still indexes everyone's messages for search when one body holds U+0000", async () => {
    const attackRoom = await createRoom(alice, { preset: 'public_chat' });
    expect((await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(attackRoom)}`, { token: bob.accessToken, body: {} })).status).toBe(200);
    const rooms = server.hs.services.rooms;
    // Committed in one batch, so indexed in one index transaction.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const holder = rooms.write(attackRoom, () => gate);
    const sends = [
      rooms.sendEvent({ userId: alice.userId }, attackRoom, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'nul\u0000byte' } }),
      rooms.sendEvent({ userId: alice.userId }, attackRoom, {
        type: 'm.room.message',
        content: { msgtype: 'm.text', body: 'x', 'm.relates_to': { rel_type: 'm.\u0000', event_id: '$x\u0000' } },
      }),
      rooms.sendEvent({ userId: bob.userId }, attackRoom, { type: 'm.room.message', content: { msgtype: 'm.text', body: 'findme please' } }),
    ];
    release();
    await holder;
    await Promise.all(sends);
    const search = (user: TestUser, term: string) =>
      request(server.baseUrl, 'POST', '/_matrix/client/v3/search', { token: user.accessToken, body: { search_categories: { room_events: { search_term: term } } } });
    const found = await search(bob, 'findme');
    expect(found.status).toBe(200);
    expect(found.body.search_categories.room_events.results.map((r: { result: { content: { body: string } } }) => r.result.content.body)).toEqual(['findme please']);
    const own = await search(alice, 'byte');
    expect(own.body.search_categories.room_events.results).toHaveLength(1);
  });
});
