import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { api, enc, eventually, startFleet, sync, type Fleet } from './helpers.js';

// A remote user who leaves the last room shared with us (SyTest: "If remote user leaves room we no longer
// receive device updates"): the leave shows in device_lists.left with no empty `changed` beside it (as
// Synapse leaves empty lists out), and later key changes of the leaver never show, while those of a remote
// user still in the room do.
//   A localhost:<port>  — alice, who owns the room
//   B 127.0.0.1:<port>  — bob (leaves) and carol (stays)
describe.each(testDialects())('device lists of a remote user who left, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser, carol: TestUser;
  let roomId: string;

  beforeAll(async () => {
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1']);
    [A, B] = fleet.servers as [TestServer, TestServer];
    alice = await registerUser(A.baseUrl, 'alice');
    [bob, carol] = [await registerUser(B.baseUrl, 'bob'), await registerUser(B.baseUrl, 'carol')];
    roomId = (await api(A, alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    for (const u of [bob, carol]) expect((await api(B, u, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    await eventually(async () => Object.keys((await api(A, alice, 'GET', `/rooms/${enc(roomId)}/joined_members`)).body.joined ?? {}).length === 3, 'both joined on A');
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  const uploadKeys = (user: TestUser, key: string) =>
    api(B, user, 'POST', '/keys/upload', {
      device_keys: { user_id: user.userId, device_id: user.deviceId, algorithms: ['m.megolm.v1.aes-sha2'], keys: { [`ed25519:${user.deviceId}`]: key }, signatures: {} },
    });

  it('reports the leave in `left` only, then only the key changes of the user who stayed', async () => {
    await A.hs.services.federationEdus.idle();
    const before = (await sync(A, alice)).next_batch as string;
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    const withLeave = await eventually(async () => {
      const body = await sync(A, alice, before);
      return body.device_lists?.left?.includes(bob.userId) ? body : undefined;
    }, 'bob in device_lists.left');
    expect(withLeave.device_lists).toEqual({ left: [bob.userId] });

    expect((await uploadKeys(bob, 'after-leave')).status).toBe(200);
    expect((await uploadKeys(carol, 'still-here')).status).toBe(200);
    let since = withLeave.next_batch as string;
    const changed = new Set<string>();
    await eventually(async () => {
      const body = await sync(A, alice, since);
      since = body.next_batch;
      for (const u of body.device_lists?.changed ?? []) changed.add(u);
      return changed.has(carol.userId);
    }, 'carol in device_lists.changed');
    await B.hs.services.federationEdus.idle();
    await A.hs.services.federationEdus.idle();
    for (const u of (await sync(A, alice, since)).device_lists?.changed ?? []) changed.add(u);
    expect(changed.has(bob.userId)).toBe(false);
  });
});
