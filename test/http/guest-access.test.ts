import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request, type HttpResult } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

interface Guest {
  userId: string;
  accessToken: string;
}

// Client-Server API, "Guest access": guests join rooms whose m.room.guest_access is can_join, and talk there.
describe.each(testDialects())('guest access on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let txn = 0;
  beforeAll(async () => {
    server = await startHomeserver({ dialect, config: { allow_guest_access: true } });
    alice = await registerUser(server.baseUrl, 'alice');
  });
  afterAll(async () => {
    await server?.close();
  });

  const call = (who: { accessToken: string }, method: string, path: string, body?: unknown): Promise<HttpResult> =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: who.accessToken, body });
  const room = (id: string) => `/rooms/${encodeURIComponent(id)}`;
  const newGuest = async (): Promise<Guest> => {
    const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register?kind=guest', { body: {} });
    expect(res.status).toBe(200);
    return { userId: res.body.user_id, accessToken: res.body.access_token };
  };
  const newRoom = async (guestAccess?: 'can_join' | 'forbidden'): Promise<string> => {
    const roomId = (await call(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    if (guestAccess) await call(alice, 'PUT', `${room(roomId)}/state/m.room.guest_access/`, { guest_access: guestAccess });
    return roomId;
  };

  it('lets a guest join a can_join room (rooms/{id}/join and /join/{id}), talk, read, set a display name and leave', async () => {
    const guest = await newGuest();
    const roomId = await newRoom('can_join');
    const joined = await call(guest, 'POST', `${room(roomId)}/join`, {});
    expect(joined.status).toBe(200);
    expect(joined.body.room_id).toBe(roomId);

    const sent = await call(guest, 'PUT', `${room(roomId)}/send/m.room.message/g${++txn}`, { msgtype: 'm.text', body: 'sup' });
    expect(sent.status).toBe(200);
    const messages = await call(alice, 'GET', `${room(roomId)}/messages?limit=1`);
    expect(messages.body.chunk[0]).toMatchObject({ sender: guest.userId, content: { body: 'sup' } });
    expect((await call(guest, 'GET', `${room(roomId)}/messages?limit=1`)).status).toBe(200);
    expect((await call(guest, 'GET', `${room(roomId)}/members`)).status).toBe(200);

    expect((await call(guest, 'PUT', `/profile/${encodeURIComponent(guest.userId)}/displayname`, { displayname: 'creeper' })).status).toBe(200);
    const member = await call(guest, 'GET', `${room(roomId)}/state/m.room.member/${encodeURIComponent(guest.userId)}`);
    expect(member.body.displayname).toBe('creeper');
    const avatar = await call(guest, 'PUT', `/profile/${encodeURIComponent(guest.userId)}/avatar_url`, { avatar_url: 'mxc://localhost/x' });
    expect(avatar.status).toBe(403);
    expect(avatar.body.errcode).toBe('M_GUEST_ACCESS_FORBIDDEN');

    expect((await call(guest, 'POST', `${room(roomId)}/leave`, {})).status).toBe(200);
    const again = await call(guest, 'POST', `/join/${encodeURIComponent(roomId)}`, {});
    expect(again.status).toBe(200);
    expect(again.body.room_id).toBe(roomId);
  });

  it.each([
    ['without m.room.guest_access', undefined],
    ['whose guest_access is forbidden', 'forbidden' as const],
  ])('refuses a guest joining a room %s with 403 M_FORBIDDEN, and the guest is not in it', async (_name, access) => {
    const guest = await newGuest();
    const roomId = await newRoom(access);
    for (const path of [`${room(roomId)}/join`, `/join/${encodeURIComponent(roomId)}`]) {
      const res = await call(guest, 'POST', path, {});
      expect(res.status).toBe(403);
      expect(res.body.errcode).toBe('M_FORBIDDEN');
    }
    const members = await call(alice, 'GET', `${room(roomId)}/members`);
    expect(members.body.chunk.map((e: { state_key: string }) => e.state_key)).not.toContain(guest.userId);
    const send = await call(guest, 'PUT', `${room(roomId)}/send/m.room.message/g${++txn}`, { msgtype: 'm.text', body: 'no' });
    expect(send.status).toBe(403);
  });

  it('makes joined guests leave when guest_access stops being can_join, and members stay', async () => {
    const guest = await newGuest();
    const bob = await registerUser(server.baseUrl, 'bob');
    const roomId = await newRoom('can_join');
    expect((await call(guest, 'POST', `${room(roomId)}/join`, {})).status).toBe(200);
    expect((await call(bob, 'POST', `${room(roomId)}/join`, {})).status).toBe(200);
    expect((await call(alice, 'PUT', `${room(roomId)}/state/m.room.guest_access/`, { guest_access: 'forbidden' })).status).toBe(200);

    const membership = async (userId: string) =>
      (await call(alice, 'GET', `${room(roomId)}/state/m.room.member/${encodeURIComponent(userId)}`)).body.membership;
    // The leave is written after the guest_access change commits: wait for it as SyTest does.
    let seen = await membership(guest.userId);
    while (seen !== 'leave') {
      await new Promise((r) => setTimeout(r, 20));
      seen = await membership(guest.userId);
    }
    expect(seen).toBe('leave');
    expect(await membership(bob.userId)).toBe('join');
    const rejoin = await call(guest, 'POST', `${room(roomId)}/join`, {});
    expect(rejoin.status).toBe(403);
  });

  it("lets a guest read profiles, its own display name included, before and after setting it", async () => {
    const guest = await newGuest();
    const path = `/profile/${encodeURIComponent(guest.userId)}/displayname`;
    expect((await call(guest, 'GET', path)).status).toBe(200);
    expect((await call(guest, 'PUT', path, { displayname: 'creeper' })).status).toBe(200);
    const after = await call(guest, 'GET', path);
    expect(after.status).toBe(200);
    expect(after.body.displayname).toBe('creeper');
    const whole = await call(guest, 'GET', `/profile/${encodeURIComponent(alice.userId)}`);
    expect(whole.status).toBe(200);
  });

  it('upgrades a guest registering its own localpart with its guest_access_token: same user id, rooms kept, now a full user', async () => {
    const guest = await newGuest();
    const roomId = await newRoom('can_join');
    expect((await call(guest, 'POST', `${room(roomId)}/join`, {})).status).toBe(200);
    const localpart = guest.userId.slice(1, guest.userId.indexOf(':'));
    const body = { username: localpart, password: 'SIR_Arthur_David', guest_access_token: guest.accessToken };
    const first = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', { body });
    expect(first.status).toBe(401);
    const done = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', { body: { ...body, auth: { type: 'm.login.dummy' } } });
    expect(done.status).toBe(200);
    expect(done.body.user_id).toBe(guest.userId);
    const full = { accessToken: done.body.access_token as string };
    expect((await call(full, 'GET', '/account/whoami')).body).toMatchObject({ user_id: guest.userId, is_guest: false });
    // A full user may now do what guests may not, and is still in the room it joined as a guest.
    expect((await call(full, 'POST', '/createRoom', {})).status).toBe(200);
    expect((await call(full, 'GET', `${room(roomId)}/joined_members`)).body.joined[guest.userId]).toBeDefined();
    const login = await request(server.baseUrl, 'POST', '/_matrix/client/v3/login', {
      body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: localpart }, password: 'SIR_Arthur_David' },
    });
    expect(login.status).toBe(200);
  });

  it("refuses a guest's token for another guest's localpart, and a taken localpart without a guest token", async () => {
    const [one, two] = [await newGuest(), await newGuest()];
    const localpart = one.userId.slice(1, one.userId.indexOf(':'));
    const other = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', {
      body: { username: localpart, password: 'SIR_Arthur_David', guest_access_token: two.accessToken, auth: { type: 'm.login.dummy' } },
    });
    expect(other.status).toBe(403);
    const none = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', {
      body: { username: localpart, password: 'SIR_Arthur_David', auth: { type: 'm.login.dummy' } },
    });
    expect(none.status).toBe(400);
    expect(none.body.errcode).toBe('M_USER_IN_USE');
    expect((await call(one, 'GET', '/account/whoami')).body.is_guest).toBe(true);
  });

  it('still keeps guests off routes the spec does not open to them', async () => {
    const guest = await newGuest();
    const res = await call(guest, 'POST', '/createRoom', {});
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe('M_GUEST_ACCESS_FORBIDDEN');
  });
});
