// Three Skjól servers over real HTTPS on loopback, each with its own name and certificate (one test CA):
//   A localhost:<port>  — alice, who owns the rooms and their aliases
//   B 127.0.0.1:<port>  — bob
//   C localhost:<port>  — carol
// Rooms on A joined by users of B and C; an encrypted room spanning all three with Rust crypto clients;
// every room version created on A and joined from B and C.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MatrixClient } from 'matrix-js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOM_VERSIONS } from '../../src/rooms/roomVersions.js';
import {
  loginDevice,
  sendText,
  specViolations,
  startCryptoClient,
  stopClients,
  waitForDecrypted,
  waitForDevices,
  waitForRoom,
} from '../helpers/crypto.js';
import { freePort, startHomeserver, type TestServer } from '../helpers/homeserver.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { createTestCa, issueCert } from './tls.js';
import { api, enc, eventually, joinedMembers, messageBodies, send as sendAs, specChecked } from './helpers.js';


async function joinByAlias(server: TestServer, user: TestUser, alias: string): Promise<string> {
  const res = await api(server, user, 'POST', `/join/${enc(alias)}`, {});
  if (res.status !== 200) throw new Error(`join ${alias} failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.room_id;
}

// SQLite only: three servers per dialect would double a slow suite; the dialects are covered by the two-server tests.
describe('three servers on sqlite', () => {
  let dir: string;
  let A: TestServer, B: TestServer, C: TestServer;
  let alice: TestUser, bob: TestUser, carol: TestUser;
  const everyone: Array<[TestServer, () => TestUser]> = [];
  const clients: MatrixClient[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-fed-three-'));
    const ca = createTestCa(dir);
    const [pA, pB, pC] = [await freePort(), await freePort(), await freePort()];
    const config = { federation_custom_ca_list: [ca.caPath] };
    A = specChecked(await startHomeserver({ serverName: `localhost:${pA}`, tls: { ...issueCert(dir, 'a', ca), port: pA }, config }));
    B = specChecked(await startHomeserver({ serverName: `127.0.0.1:${pB}`, tls: { ...issueCert(dir, 'b', ca), port: pB }, config }));
    C = specChecked(await startHomeserver({ serverName: `localhost:${pC}`, tls: { ...issueCert(dir, 'c', ca), port: pC }, config }));
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
    carol = await registerUser(C.baseUrl, 'carol');
    everyone.push([A, () => alice], [B, () => bob], [C, () => carol]);
  }, 60_000);

  afterAll(async () => {
    await stopClients(clients);
    await Promise.all([A, B, C].filter(Boolean).map((s) => s.close()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a room on A joined by users of B and C: everyone sees everyone and every message', async () => {
    const created = await api(A, alice, 'POST', '/createRoom', { preset: 'public_chat', room_alias_name: 'plaza', name: 'Plaza' });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    const alias = `#plaza:${A.serverName}`;
    expect(await joinByAlias(B, bob, alias)).toBe(roomId);
    // carol joins through A; B learns of her join from A (B is not asked).
    expect(await joinByAlias(C, carol, alias)).toBe(roomId);
    const all = [alice.userId, bob.userId, carol.userId].sort();
    for (const [server, user] of everyone) {
      await eventually(async () => JSON.stringify(await joinedMembers(server, user(), roomId)) === JSON.stringify(all), `all three joined, on ${server.serverName}`);
    }
    for (const [server, user] of everyone) await sendAs(server, user(), roomId, `hello from ${user().userId}`);
    for (const [server, user] of everyone) {
      await eventually(async () => {
        const bodies = await messageBodies(server, user(), roomId);
        return everyone.every(([, u]) => bodies.includes(`hello from ${u().userId}`));
      }, `every message on ${server.serverName}`);
    }
    // B and C, never talking to each other directly before, now share the room: C's state names bob as joined.
    const bobOnC = await api(C, carol, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`);
    expect(bobOnC).toMatchObject({ status: 200, body: { membership: 'join' } });
  });

  it('an encrypted room across A, B and C: every member decrypts every message; a new device on C is noticed on A and B', async () => {
    const aliceClient = await startCryptoClient(A.baseUrl, alice);
    clients.push(aliceClient);
    const bobClient = await startCryptoClient(B.baseUrl, bob);
    clients.push(bobClient);
    const carolClient = await startCryptoClient(C.baseUrl, carol);
    clients.push(carolClient);

    const created = await api(A, alice, 'POST', '/createRoom', {
      preset: 'public_chat',
      room_alias_name: 'vault',
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    await joinByAlias(B, bob, `#vault:${A.serverName}`);
    await joinByAlias(C, carol, `#vault:${A.serverName}`);
    const members = [alice.userId, bob.userId, carol.userId];
    const pairs: Array<[MatrixClient, TestUser]> = [
      [aliceClient, alice],
      [bobClient, bob],
      [carolClient, carol],
    ];
    for (const [client] of pairs) await waitForRoom(client, roomId, members);
    for (const [client] of pairs) for (const [, user] of pairs) await waitForDevices(client, user.userId, [user.deviceId]);

    for (const [client, user] of pairs) {
      const body = `secret from ${user.userId}`;
      await sendText(client, roomId, body);
      for (const [other] of pairs) await waitForDecrypted(other, roomId, body, 20_000);
    }

    // carol adds a device on C: A's and B's clients learn of it through device_lists over federation.
    const carolPhone = await loginDevice(C.baseUrl, carol);
    const phoneClient = await startCryptoClient(C.baseUrl, carolPhone);
    clients.push(phoneClient);
    await waitForDevices(aliceClient, carol.userId, [carol.deviceId, carolPhone.deviceId]);
    await waitForDevices(bobClient, carol.userId, [carol.deviceId, carolPhone.deviceId]);
    // ... and encrypt for it: the new device decrypts what bob sends next.
    await sendText(bobClient, roomId, 'for every device of carol');
    await waitForDecrypted(phoneClient, roomId, 'for every device of carol', 20_000);
    await waitForDecrypted(carolClient, roomId, 'for every device of carol', 20_000);
    await waitForDecrypted(aliceClient, roomId, 'for every device of carol', 20_000);

    expect(specViolations).toEqual([]);
  }, 120_000);

  const versions = [...ROOM_VERSIONS.keys()].sort((a, b) => Number(a) - Number(b));

  it('serves room versions 1 to 12', () => {
    expect(versions).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']);
  });

  it.each(versions)('a room of version %s created on A is joined from B and C, with a message each way', async (version) => {
    const created = await api(A, alice, 'POST', '/createRoom', { preset: 'public_chat', room_version: version, room_alias_name: `three-v${version}` });
    expect(created.status).toBe(200);
    const roomId = created.body.room_id as string;
    const alias = `#three-v${version}:${A.serverName}`;
    expect(await joinByAlias(B, bob, alias)).toBe(roomId);
    expect(await joinByAlias(C, carol, alias)).toBe(roomId);
    for (const server of [B, C]) {
      const room = await server.hs.services.db.knex('rooms').where({ room_id: roomId }).first();
      expect(room.room_version).toBe(version);
    }
    // A server sends only to the servers it knows are in the room: everyone must know every join first.
    const all = [alice.userId, bob.userId, carol.userId].sort();
    for (const [server, user] of everyone) {
      await eventually(async () => JSON.stringify(await joinedMembers(server, user(), roomId)) === JSON.stringify(all), `all joined v${version} on ${server.serverName}`);
    }
    for (const [server, user] of everyone) await sendAs(server, user(), roomId, `v${version} from ${user().userId}`);
    for (const [server, user] of everyone) {
      await eventually(async () => {
        const bodies = await messageBodies(server, user(), roomId);
        return everyone.every(([, u]) => bodies.includes(`v${version} from ${u().userId}`));
      }, `every v${version} message on ${server.serverName}`);
    }
  });
});
