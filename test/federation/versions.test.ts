import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/crypto/signing.js';
import { buildPdu, eventIdOf } from '../../src/rooms/eventFormat.js';
import { ROOM_VERSIONS, getRoomVersion } from '../../src/rooms/roomVersions.js';
import type { Pdu } from '../../src/types/pdu.js';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import type { TestUser } from '../helpers/users.js';
import { enc, eventually, joinedMembers, messageBodies, send, startPair, type Fleet } from './helpers.js';

// Every supported room version across two servers, and the inbound checks on events another server built.
//   A localhost:<port>  — alice
//   B 127.0.0.1:<port>  — bob, who creates the rooms
describe.each(testDialects())('room versions and inbound PDU checks over federation on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  const versions = [...ROOM_VERSIONS.keys()].filter((v) => Number(v) >= 1 && Number(v) <= 11).sort((a, b) => Number(a) - Number(b));

  it('covers room versions 1 to 11', () => {
    expect(versions).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11']);
  });

  it.each(versions)('a room of version %s is created on B, joined from A, and carries a message each way', async (version) => {
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', {
      token: bob.accessToken,
      body: { preset: 'public_chat', room_version: version, name: `v${version}` },
    });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    const join = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} });
    expect(join).toMatchObject({ status: 200, body: { room_id: roomId } });
    expect(await joinedMembers(B, bob, roomId)).toEqual([alice.userId, bob.userId].sort());
    const room = await A.hs.services.db.knex('rooms').where({ room_id: roomId }).first();
    expect(room.room_version).toBe(version);

    await send(A, alice, roomId, `from A in v${version}`);
    await eventually(async () => (await messageBodies(B, bob, roomId)).includes(`from A in v${version}`), `A's message on B (v${version})`);
    await send(B, bob, roomId, `from B in v${version}`);
    await eventually(async () => (await messageBodies(A, alice, roomId)).includes(`from B in v${version}`), `B's message on A (v${version})`);
  });

  it('refuses a bad signature, a forged sender and an event the auth rules forbid; redacts a wrong content hash', async () => {
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat', room_version: '10' } });
    const roomId = created.body.room_id as string;
    expect((await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} })).status).toBe(200);
    const version = getRoomVersion('10')!;
    const state = await B.hs.services.rooms.reader.currentState(roomId);
    const idOf = (type: string, key = '') => eventIdOf(state.get(`${type}\u0000${key}`)!, version);
    const latest = await B.hs.services.db.knex('events').where({ room_id: roomId, outlier: false }).orderBy('stream_ordering', 'desc').first();
    const base = { room_id: roomId, prev_events: [latest.event_id], depth: Number(latest.depth) + 1, origin_server_ts: Date.now() };
    const aliceAuth = [idOf('m.room.create'), idOf('m.room.power_levels'), idOf('m.room.member', alice.userId)];
    const signedByA = { serverName: A.serverName, key: A.hs.services.signingKey };

    // 1. Signed by A under A's key id, but with another key.
    const impostorKey = { ...generateSigningKey(A.hs.services.signingKey.keyId.replace(/^ed25519:/, '')) };
    const badSig = buildPdu({ ...base, sender: alice.userId, type: 'm.room.message', content: { body: 'bad signature' }, auth_events: aliceAuth }, version, {
      serverName: A.serverName,
      key: impostorKey,
    });
    // 2. A message whose content was changed after hashing and signing.
    const hashed = buildPdu({ ...base, sender: alice.userId, type: 'm.room.message', content: { body: 'original' }, auth_events: aliceAuth }, version, signedByA);
    const tampered = { ...hashed.pdu, content: { msgtype: 'm.text', body: 'tampered' } } as Pdu;
    // 3. A message "from bob", a user of B, signed by A.
    const forged = buildPdu(
      { ...base, sender: bob.userId, type: 'm.room.message', content: { body: 'forged' }, auth_events: [idOf('m.room.create'), idOf('m.room.power_levels'), idOf('m.room.member', bob.userId)] },
      version,
      signedByA,
    );
    // 4. Alice (power 0) makes herself admin.
    const grab = buildPdu(
      { ...base, sender: alice.userId, type: 'm.room.power_levels', state_key: '', content: { users: { [alice.userId]: 100 } }, auth_events: aliceAuth },
      version,
      signedByA,
    );

    const res = await A.hs.services.federation.client.put<{ pdus: Record<string, { error?: string }> }>(B.serverName, '/_matrix/federation/v1/send/checks-1', {
      origin: A.serverName,
      origin_server_ts: Date.now(),
      pdus: [badSig.pdu, tampered, forged.pdu, grab.pdu],
    });
    expect(res.pdus[badSig.eventId]?.error).toMatch(/signature/);
    expect(res.pdus[forged.eventId]?.error).toMatch(/signed by/);
    // Rejected by the auth rules: stored as rejected, answered with an empty result (as Synapse).
    expect(res.pdus[grab.eventId]).toEqual({});
    expect(res.pdus[hashed.eventId]).toEqual({});

    const stored = async (id: string) => B.hs.services.db.knex('events').where({ event_id: id }).first();
    expect(await stored(badSig.eventId)).toBeUndefined();
    expect(await stored(forged.eventId)).toBeUndefined();
    expect((await stored(grab.eventId))?.rejected_reason).toEqual(expect.any(String));
    // The tampered message is kept, redacted: clients see it without content.
    expect(JSON.parse((await stored(hashed.eventId)).json).content).toEqual({});
    const page = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=20`, { token: bob.accessToken });
    const bodies = (page.body.chunk as Array<{ event_id: string; content: { body?: string } }>).map((e) => e.content.body);
    expect(bodies).not.toContain('tampered');
    expect(bodies).not.toContain('forged');
    expect(bodies).not.toContain('bad signature');
    expect(page.body.chunk.find((e: { event_id: string }) => e.event_id === hashed.eventId)?.content).toEqual({});
    const power = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`, { token: bob.accessToken });
    expect(power.body.users[alice.userId]).toBeUndefined();
  });
});
