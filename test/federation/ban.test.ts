import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, membershipOf, startPair, type Fleet } from './helpers.js';

// A user of another server banned from a room (Client-Server API, "Banning users in a room"): their own
// server stops showing them the room, and they may not rejoin (nor be invited) until unbanned.
//   A localhost:<port>  — alice, who gets banned
//   B 127.0.0.1:<port>  — bob, who owns the room
describe.each(testDialects())('a remote user banned from a room, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it('is refused the room on its own server, may not rejoin or be invited, and joins again once unbanned', async () => {
    const roomId = (await api(B, bob, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id as string;
    expect((await api(A, alice, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/ban`, { user_id: alice.userId, reason: 'testing' })).status).toBe(200);

    const ownState = `/rooms/${enc(roomId)}/state/m.room.member/${enc(alice.userId)}`;
    await eventually(async () => (await api(A, alice, 'GET', ownState)).status === 403, 'A refuses alice the room state');
    expect((await api(A, alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b`)).status).toBe(403);

    const rejoin = await api(A, alice, 'POST', `/join/${enc(roomId)}?server_name=${enc(B.serverName)}`, {});
    expect(rejoin.status).toBe(403);
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: alice.userId })).status).toBe(403);
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: alice.userId })).status).toBe(403);
    expect(await membershipOf(B, bob, roomId, alice.userId)).toBe('ban');

    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/unban`, { user_id: alice.userId })).status).toBe(200);
    expect((await api(A, alice, 'POST', `/join/${enc(roomId)}?server_name=${enc(B.serverName)}`, {})).status).toBe(200);
    expect(await membershipOf(B, bob, roomId, alice.userId)).toBe('join');
  });
});
