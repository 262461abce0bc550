import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

describe.each(testDialects())('reporting content on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let mallory: TestUser;
  let roomId: string;
  let otherRoomId: string;
  let spamId: string;
  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const reports = () => server.hs.services.directory.reports.list({ limit: 100 });

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    [alice, bob, mallory] = (await Promise.all(['alice', 'bob', 'mallory'].map((n) => registerUser(server.baseUrl, n)))) as [TestUser, TestUser, TestUser];
    roomId = (await api(alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id;
    otherRoomId = (await api(bob, 'POST', '/createRoom', {})).body.room_id;
    await api(mallory, 'POST', `/join/${enc(roomId)}`, {});
    spamId = (await api(mallory, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/1`, { msgtype: 'm.text', body: 'buy now' })).body.event_id;
  });
  afterAll(async () => {
    await server?.close();
  });

  it('stores a report of an event in a joined room (matrix-js-sdk)', async () => {
    await sdkClient(server.baseUrl, alice).reportEvent(roomId, spamId, -100, 'spam');
    expect(await reports()).toContainEqual(
      expect.objectContaining({ reporter: alice.userId, roomId, eventId: spamId, targetUserId: mallory.userId, reason: 'spam', score: -100 }),
    );
    // Without a reason or score (both optional).
    expect((await api(alice, 'POST', `/rooms/${enc(roomId)}/report/${enc(spamId)}`, {})).status).toBe(200);
  });

  it('answers 404 for unknown events, events of another room, and reporters not in the room', async () => {
    const unknown = await api(alice, 'POST', `/rooms/${enc(roomId)}/report/${enc('$nope')}`, { reason: 'x' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_NOT_FOUND');
    expect((await api(alice, 'POST', `/rooms/${enc(otherRoomId)}/report/${enc(spamId)}`, { reason: 'x' })).status).toBe(404);
    expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/report/${enc(spamId)}`, { reason: 'x' })).status).toBe(404);
    expect((await api(alice, 'POST', `/rooms/${enc('!unknown:localhost')}/report/${enc(spamId)}`, { reason: 'x' })).status).toBe(404);
  });

  it('stores a report of a whole room, from members and non-members alike', async () => {
    await sdkClient(server.baseUrl, bob).reportRoom(roomId, 'this room is all spam');
    expect(await reports()).toContainEqual(expect.objectContaining({ reporter: bob.userId, roomId, eventId: null, reason: 'this room is all spam' }));
    expect((await api(bob, 'POST', `/rooms/${enc('!unknown:localhost')}/report`, { reason: 'x' })).status).toBe(404);
    const missing = await api(bob, 'POST', `/rooms/${enc(roomId)}/report`, {});
    expect(missing.status).toBe(400);
    expect(missing.body.errcode).toBe('M_MISSING_PARAM');
  });

  it('stores a report of a user and refuses unknown users', async () => {
    expect((await api(alice, 'POST', `/users/${enc(mallory.userId)}/report`, { reason: 'spammer' })).status).toBe(200);
    expect(await reports()).toContainEqual(expect.objectContaining({ reporter: alice.userId, targetUserId: mallory.userId, roomId: null, reason: 'spammer' }));
    expect((await api(alice, 'POST', `/users/${enc('@ghost:localhost')}/report`, { reason: 'x' })).status).toBe(404);
  });
});
