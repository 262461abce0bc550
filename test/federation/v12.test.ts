// Room version 12 across two servers: room ids without a server part, joins through an alias or an
// invite, make_join templates without the create event in auth_events, messages both ways.
//   A localhost:<port>  — alice
//   B 127.0.0.1:<port>  — bob
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { createTestCa, issueCert } from './tls.js';
import { api, enc, eventually, joinedMembers, messageBodies, send as sendAs, specChecked } from './helpers.js';

type Json = any;
const V12_ROOM_ID = /^![A-Za-z0-9_-]{43}$/;

describe.each(testDialects())('room version 12 across servers on %s', (dialect) => {
  let dir: string;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-fed-v12-'));
    const ca = createTestCa(dir);
    const [pA, pB] = [await freePort(), await freePort()];
    const config = { federation_custom_ca_list: [ca.caPath] };
    A = specChecked(await startHomeserver({ dialect, serverName: `localhost:${pA}`, tls: { ...issueCert(dir, 'a', ca), port: pA }, config }));
    B = specChecked(await startHomeserver({ dialect, serverName: `127.0.0.1:${pB}`, tls: { ...issueCert(dir, 'b', ca), port: pB }, config }));
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
  }, 60_000);

  afterAll(async () => {
    await Promise.all([A, B].filter(Boolean).map((s) => s.close()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a v12 room on B is joined from A by alias; make_join leaves the create event implied; messages go both ways', async () => {
    const created = await api(B, bob, 'POST', '/createRoom', { room_version: '12', preset: 'public_chat', room_alias_name: 'twelve', name: 'Twelve' });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    expect(roomId).toMatch(V12_ROOM_ID);
    const createId = '$' + roomId.slice(1);

    // The template B hands out: no create event among its auth events, the room id implies it.
    const template = await A.hs.services.federation.client.get<{ room_version: string; event: Json }>(
      B.serverName,
      `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(alice.userId)}`,
      { ver: ['11', '12'] },
    );
    expect(template.room_version).toBe('12');
    expect(template.event.room_id).toBe(roomId);
    expect(template.event.auth_events).not.toContain(createId);
    expect(template.event.auth_events.length).toBeGreaterThanOrEqual(2);
    // A server that does not speak 12 cannot join.
    const old = await A.hs.services.federation.client
      .get(B.serverName, `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(alice.userId)}`, { ver: ['10', '11'] })
      .catch((e: unknown) => e);
    expect(old).toMatchObject({ remoteStatus: 400, remoteErrcode: 'M_INCOMPATIBLE_ROOM_VERSION' });

    const joined = await api(A, alice, 'POST', `/join/${enc(`#twelve:${B.serverName}`)}`, {});
    expect(joined).toMatchObject({ status: 200, body: { room_id: roomId } });
    expect(await joinedMembers(A, alice, roomId)).toEqual([alice.userId, bob.userId].sort());
    expect(await joinedMembers(B, bob, roomId)).toEqual([alice.userId, bob.userId].sort());

    // A stored the create event as B built it: without room_id, its id giving the room id.
    const stored = await A.hs.services.db.knex('events').where({ event_id: createId }).first();
    expect(stored.room_id).toBe(roomId);
    expect(JSON.parse(stored.json).room_id).toBeUndefined();
    const room = await A.hs.services.db.knex('rooms').where({ room_id: roomId }).first();
    expect(room.room_version).toBe('12');
    const name = await api(A, alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.name/`);
    expect(name).toMatchObject({ status: 200, body: { name: 'Twelve' } });

    await sendAs(A, alice, roomId, 'from A in v12');
    await eventually(async () => (await messageBodies(B, bob, roomId)).includes('from A in v12'), "A's message on B");
    await sendAs(B, bob, roomId, 'from B in v12');
    await eventually(async () => (await messageBodies(A, alice, roomId)).includes('from B in v12'), "B's message on A");
  });

  it('creator power holds across servers: the remote joiner cannot grab power, the creator can give it', async () => {
    const created = await api(B, bob, 'POST', '/createRoom', { room_version: '12', preset: 'public_chat', room_alias_name: 'power12' });
    const roomId = created.body.room_id as string;
    expect((await api(A, alice, 'POST', `/join/${enc(`#power12:${B.serverName}`)}`, {})).status).toBe(200);
    const pl = (await api(B, bob, 'GET', `/rooms/${enc(roomId)}/state/m.room.power_levels/`)).body;
    expect(pl.users).toEqual({});

    const grab = await api(A, alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...pl, users: { [alice.userId]: 100 } });
    expect(grab.status).toBe(403);
    const give = await api(B, bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...pl, users: { [alice.userId]: 100 } });
    expect(give.status).toBe(200);
    await eventually(async () => {
      const res = await api(A, alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.power_levels/`);
      return res.status === 200 && res.body.users?.[alice.userId] === 100;
    }, 'the new power levels on A');
    // Now at 100 alice names the room from A; B accepts it (bob's infinite level stays out of reach).
    expect((await api(A, alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.name/`, { name: 'by alice' })).status).toBe(200);
    await eventually(async () => (await api(B, bob, 'GET', `/rooms/${enc(roomId)}/state/m.room.name/`)).body?.name === 'by alice', "alice's name on B");
    const kick = await api(A, alice, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId });
    expect(kick.status).toBe(403);
  });

  it('a v12 room on A, joined from B by alias; each server leaves and rejoins', async () => {
    const created = await api(A, alice, 'POST', '/createRoom', { room_version: '12', preset: 'public_chat', room_alias_name: 'atA12' });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    expect(roomId).toMatch(V12_ROOM_ID);
    const joined = await api(B, bob, 'POST', `/join/${enc(`#atA12:${A.serverName}`)}`, {});
    expect(joined).toMatchObject({ status: 200, body: { room_id: roomId } });
    expect(await joinedMembers(A, alice, roomId)).toEqual([alice.userId, bob.userId].sort());

    await sendAs(B, bob, roomId, 'hi alice');
    await eventually(async () => (await messageBodies(A, alice, roomId)).includes('hi alice'), "B's message on A");
    await sendAs(A, alice, roomId, 'hi bob');
    await eventually(async () => (await messageBodies(B, bob, roomId)).includes('hi bob'), "A's message on B");

    // bob leaves (an ordinary event in the room B knows) and comes back: a join against the room's current state.
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    await eventually(async () => !(await joinedMembers(A, alice, roomId)).includes(bob.userId), "bob's leave on A");
    expect((await api(B, bob, 'POST', `/join/${enc(`#atA12:${A.serverName}`)}`, {})).status).toBe(200);
    await eventually(async () => (await joinedMembers(A, alice, roomId)).includes(bob.userId), "bob's rejoin on A");
    await sendAs(B, bob, roomId, 'back again');
    await eventually(async () => (await messageBodies(A, alice, roomId)).includes('back again'), "B's message after the rejoin");
  });
});
