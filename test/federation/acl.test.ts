import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { globToRegExp, hostOf, isIpLiteral, serverAllowedByAcl } from '../../src/federation/acl.js';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import type { TestUser } from '../helpers/users.js';
import { enc, eventually, joinedMembers, messageBodies, send, startPair, type Fleet } from './helpers.js';

describe('server ACL evaluation (m.room.server_acl)', () => {
  it('ignores ports, matches globs case-insensitively, denies before allowing, defaults to deny', () => {
    expect(hostOf('evil.com:8448')).toBe('evil.com');
    expect(hostOf('[::1]:8448')).toBe('[::1]');
    expect(hostOf('[::1]')).toBe('[::1]');
    expect(isIpLiteral('127.0.0.1')).toBe(true);
    expect(isIpLiteral('[2001:db8::1]')).toBe(true);
    expect(isIpLiteral('example.org')).toBe(false);
    expect(globToRegExp('*.example.?om').test('Matrix.EXAMPLE.com')).toBe(true);
    expect(globToRegExp('a.b').test('axb')).toBe(false);

    const acl = { allow: ['*'], deny: ['evil.com', '*.evil.com'], allow_ip_literals: false };
    const table: Array<[string, boolean]> = [
      ['good.org', true],
      ['good.org:8448', true],
      ['evil.com', false],
      ['EVIL.com:1234', false],
      ['sub.evil.com', false],
      ['notevil.com', true],
      ['1.2.3.4', false],
      ['1.2.3.4:8448', false],
      ['[::1]:8448', false],
    ];
    for (const [server, allowed] of table) expect([server, serverAllowedByAcl(acl, server)]).toEqual([server, allowed]);
    expect(serverAllowedByAcl(undefined, 'anything')).toBe(true);
    expect(serverAllowedByAcl({ deny: [] }, 'good.org')).toBe(false); // no allow list: nobody
    expect(serverAllowedByAcl({ allow: ['*'] }, '1.2.3.4')).toBe(true); // IP literals allowed by default
    expect(serverAllowedByAcl({ allow: ['good.*'], deny: 'not a list' }, 'good.org')).toBe(true);
  });
});

// Two Skjól servers over HTTPS; B's room bans A's host by ACL once A is in it.
//   A localhost:<port>  — alice
//   B 127.0.0.1:<port>  — bob, who owns the room
describe.each(testDialects())('server ACLs and the room directory over federation on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', {
      token: bob.accessToken,
      body: { preset: 'public_chat', name: 'Guarded', visibility: 'public', topic: 'acl test' },
    });
    roomId = created.body.room_id;
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it('lists the directory of another server (GET and POST /publicRooms over federation)', async () => {
    const viaClient = await request(A.baseUrl, 'GET', `/_matrix/client/v3/publicRooms?server=${enc(B.serverName)}`, { token: alice.accessToken });
    expect(viaClient.status).toBe(200);
    expect(viaClient.body.chunk).toEqual([expect.objectContaining({ room_id: roomId, name: 'Guarded', topic: 'acl test', num_joined_members: 1 })]);
    const filtered = await request(A.baseUrl, 'POST', `/_matrix/client/v3/publicRooms?server=${enc(B.serverName)}`, {
      token: alice.accessToken,
      body: { filter: { generic_search_term: 'nothing like it' } },
    });
    expect(filtered.body.chunk).toEqual([]);
    const direct = await A.hs.services.federation.client.get<{ chunk: unknown[] }>(B.serverName, '/_matrix/federation/v1/publicRooms', { limit: '5' });
    expect(direct.chunk).toHaveLength(1);
  });

  it('refuses PDUs and room endpoints to a server the room ACL denies', async () => {
    const join = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} });
    expect(join.status).toBe(200);
    await send(A, alice, roomId, 'before the ban');
    await eventually(async () => (await messageBodies(B, bob, roomId)).includes('before the ban'), 'message before the ACL');
    // An empty /get_missing_events body is a valid (empty) question before the ban, as on Synapse.
    const gme = `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`;
    expect(await A.hs.services.federation.client.post(B.serverName, gme, {})).toEqual({ events: [] });

    // Deny A's host (any port); B itself is an IP literal, which stays allowed.
    const acl = await request(B.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.server_acl/`, {
      token: bob.accessToken,
      body: { allow: ['*'], deny: ['localhost'], allow_ip_literals: true },
    });
    expect(acl.status).toBe(200);
    await eventually(async () => {
      const s = await request(A.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.server_acl/`, { token: alice.accessToken, skipSpecCheck: true });
      return s.status === 200;
    }, 'the ACL reaches A');

    await send(A, alice, roomId, 'after the ban');
    await eventually(async () => ((await A.hs.services.db.knex('federation_outbox').count({ n: '*' }).first())!.n == 0 ? true : undefined), 'A outbox drained');
    expect(await messageBodies(B, bob, roomId)).not.toContain('after the ban');
    const fromAlice = await B.hs.services.db.knex('events').where({ room_id: roomId, sender: alice.userId, type: 'm.room.message' }).count({ n: '*' }).first();
    expect(Number(fromAlice!.n)).toBe(1);

    // A transaction straight from A: the PDU is refused with the ACL as the reason.
    const client = A.hs.services.federation.client;
    const latest = await B.hs.services.db.knex('events').where({ room_id: roomId, outlier: false }).orderBy('stream_ordering', 'desc').first();
    const sent = await client.put<{ pdus: Record<string, { error?: string }> }>(B.serverName, '/_matrix/federation/v1/send/acl-1', {
      origin: A.serverName,
      origin_server_ts: Date.now(),
      pdus: [JSON.parse(latest.json)],
    });
    expect(Object.values(sent.pdus)[0]?.error).toMatch(/server ACL/);

    // The room endpoints answer 403.
    const path = (p: string) => `/_matrix/federation/v1/${p}`;
    for (const req of [
      () => client.get(B.serverName, path(`state_ids/${enc(roomId)}`), { event_id: latest.event_id }),
      () => client.get(B.serverName, path(`event/${enc(latest.event_id)}`)),
      () => client.get(B.serverName, path(`backfill/${enc(roomId)}`), { v: [latest.event_id], limit: '3' }),
      () => client.get(B.serverName, path(`make_join/${enc(roomId)}/${enc(`@zed:${A.serverName}`)}`), { ver: ['10'] }),
      () => client.get(B.serverName, path(`make_leave/${enc(roomId)}/${enc(alice.userId)}`)),
      () => client.post(B.serverName, path(`get_missing_events/${enc(roomId)}`), { earliest_events: [], latest_events: [latest.event_id] }),
      () => client.post(B.serverName, path(`get_missing_events/${enc(roomId)}`), {}),
    ]) {
      await expect(req()).rejects.toMatchObject({ remoteStatus: 403, remoteErrcode: 'M_FORBIDDEN' });
    }
    // Bob's messages still reach A (the ACL restricts what B accepts from A, not what B sends).
    await send(B, bob, roomId, 'still talking');
    await eventually(async () => (await messageBodies(A, alice, roomId)).includes('still talking'), 'bob message on A');
    expect(await joinedMembers(B, bob, roomId)).toEqual([alice.userId, bob.userId].sort());
  });
});
