import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { api, enc, eventually, joinedMembers, membershipOf, startFleet, sync, type Fleet } from './helpers.js';

// Client-Server API, "Guest access", over federation: a guest of A accepts an invite to a private room of B
// when the room's guest_access is can_join, and is refused (403, still only invited) when it is forbidden.
//   A localhost:<port>  — the guest
//   B 127.0.0.1:<port>  — bob, who owns the rooms
describe.each(testDialects())('guests joining rooms of another server on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let bob: TestUser;

  beforeAll(async () => {
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1'], { allow_guest_access: true });
    [A, B] = fleet.servers as [TestServer, TestServer];
    bob = await registerUser(B.baseUrl, 'bob');
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  const newGuest = async (): Promise<TestUser> => {
    const res = await request(A.baseUrl, 'POST', '/_matrix/client/v3/register?kind=guest', { body: {} });
    expect(res.status).toBe(200);
    return { userId: res.body.user_id, accessToken: res.body.access_token } as TestUser;
  };

  const invitedTo = async (guestAccess: 'can_join' | 'forbidden', guest: TestUser): Promise<string> => {
    const roomId = (await api(B, bob, 'POST', '/createRoom', { preset: 'private_chat' })).body.room_id as string;
    expect((await api(B, bob, 'PUT', `/rooms/${enc(roomId)}/state/m.room.guest_access/`, { guest_access: guestAccess })).status).toBe(200);
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: guest.userId })).status).toBe(200);
    await eventually(async () => (await sync(A, guest)).rooms?.invite?.[roomId], 'the guest sees the invite');
    return roomId;
  };

  it('a guest accepts an invite to a private room of B whose guest_access is can_join', async () => {
    const guest = await newGuest();
    const roomId = await invitedTo('can_join', guest);
    const joined = await api(A, guest, 'POST', `/join/${enc(roomId)}`, {});
    expect(joined.status).toBe(200);
    expect(await joinedMembers(B, bob, roomId)).toEqual([bob.userId, guest.userId].sort());
    expect(await membershipOf(A, guest, roomId, guest.userId)).toBe('join');
    expect(await membershipOf(A, guest, roomId, bob.userId)).toBe('join');
  });

  it('a guest invited to a room of B whose guest_access is forbidden is refused with 403 and stays invited', async () => {
    const guest = await newGuest();
    const roomId = await invitedTo('forbidden', guest);
    const joined = await api(A, guest, 'POST', `/join/${enc(roomId)}`, {});
    expect(joined.status).toBe(403);
    expect(joined.body.errcode).toBe('M_FORBIDDEN');
    expect(await membershipOf(B, bob, roomId, guest.userId)).toBe('invite');
  });
});
