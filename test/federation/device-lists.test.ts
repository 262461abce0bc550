import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/homeserver.js';
import { testDialects } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, startPair, sync, type Fleet } from './helpers.js';

// Remote device lists as SyTest's 50federation/40devicelists.pl expects them (what Synapse does):
//   A localhost:<port>  — alice, whose server also sends hand-made EDUs
//   B 127.0.0.1:<port>  — bob, who owns the room and caches alice's device list

describe.each(testDialects())('remote device lists on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;

  const changedFor = async (server: TestServer, user: TestUser, since: string): Promise<{ changed: string[]; left: string[]; next: string }> => {
    const body = await sync(server, user, since);
    return { changed: body.device_lists?.changed ?? [], left: body.device_lists?.left ?? [], next: body.next_batch };
  };
  // Not checked against the spec's DeviceKeys schema: the hand-made keys below do not fit it, as in SyTest.
  const queryAlice = async () =>
    (await request(B.baseUrl, 'POST', '/_matrix/client/v3/keys/query', { token: bob.accessToken, body: { device_keys: { [alice.userId]: [] } }, skipSpecCheck: true })).body
      .device_keys[alice.userId] as Record<string, unknown>;
  const sendEdu = (txn: string, content: Record<string, unknown>) =>
    A.hs.services.federation.client.request({
      destination: B.serverName,
      method: 'PUT',
      path: `/_matrix/federation/v1/send/${txn}`,
      body: { origin: A.serverName, origin_server_ts: Date.now(), pdus: [], edus: [{ edu_type: 'm.device_list_update', content }] },
    });

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
    const created = await api(B, bob, 'POST', '/createRoom', { preset: 'public_chat' });
    roomId = created.body.room_id;
    expect((await api(A, alice, 'POST', `/join/${enc(roomId)}`, { server_name: [B.serverName] })).status).toBe(200);
    await eventually(async () => (await api(B, bob, 'GET', `/rooms/${enc(roomId)}/joined_members`)).body?.joined?.[alice.userId] !== undefined, 'alice joined on B');
  }, 90_000);
  afterAll(async () => {
    await fleet?.close();
  });

  it('announces the first fetch of a list, and keeps device keys in the shapes Synapse keeps, refusing relabelled ones', async () => {
    const keys = { user_id: alice.userId, device_id: alice.deviceId, algorithms: ['m.megolm.v1.aes-sha2'], keys: { [`ed25519:${alice.deviceId}`]: 'k' }, signatures: {} };
    expect((await api(A, alice, 'POST', '/keys/upload', { device_keys: keys })).status).toBe(200);
    await A.hs.services.federationEdus.idle();
    await B.hs.services.federationEdus.idle();
    const since = (await sync(B, bob)).next_batch;
    expect(Object.keys(await queryAlice())).toContain(alice.deviceId);
    // The first resync is news for clients too ("Device list doesn't change if remote server is down").
    const after = await changedFor(B, bob, since);
    expect(after.changed).toContain(alice.userId);

    const theirs = await B.hs.services.federation.client.request<{ stream_id: number }>({
      destination: A.serverName,
      method: 'GET',
      path: `/_matrix/federation/v1/user/devices/${enc(alice.userId)}`,
    });
    const s = theirs.stream_id;
    await sendEdu('shape-1', { user_id: alice.userId, device_id: 'SHAPELESS', stream_id: s + 1, prev_id: [s], keys: { device_keys: {} } });
    await sendEdu('shape-2', {
      user_id: alice.userId,
      device_id: 'RELABELLED',
      stream_id: s + 2,
      prev_id: [s + 1],
      keys: { user_id: bob.userId, device_id: 'RELABELLED', keys: {} },
    });
    const devices = await eventually(async () => {
      const d = await queryAlice();
      return Object.hasOwn(d, 'SHAPELESS') ? d : undefined;
    }, 'SHAPELESS in bob\'s query');
    expect(devices.SHAPELESS).toEqual({ device_keys: {}, unsigned: {} });
    await B.hs.services.federationEdus.idle();
    expect(Object.keys(await queryAlice())).not.toContain('RELABELLED');
  });
});
