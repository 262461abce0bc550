import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';

type Json = any;

describe.each(testDialects())('room tags on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let roomId: string;
  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const tagPath = (user: TestUser, tag?: string) => `/user/${enc(user.userId)}/rooms/${enc(roomId)}/tags${tag !== undefined ? `/${enc(tag)}` : ''}`;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
    roomId = (await api(alice, 'POST', '/createRoom', {})).body.room_id;
  });
  afterAll(async () => {
    await server?.close();
  });

  it('sets, lists and removes tags (matrix-js-sdk)', async () => {
    const client = sdkClient(server.baseUrl, alice);
    expect(await client.getRoomTags(roomId)).toEqual({ tags: {} });
    await client.setRoomTag(roomId, 'm.favourite', { order: 0.25 });
    await client.setRoomTag(roomId, 'u.work', {});
    expect(await client.getRoomTags(roomId)).toEqual({ tags: { 'm.favourite': { order: 0.25 }, 'u.work': {} } });
    await client.setRoomTag(roomId, 'm.favourite', { order: 0.75 });
    await client.deleteRoomTag(roomId, 'u.work');
    expect(await client.getRoomTags(roomId)).toEqual({ tags: { 'm.favourite': { order: 0.75 } } });
    // Removing a tag that is not there is fine.
    await client.deleteRoomTag(roomId, 'u.never');
    await client.deleteRoomTag(roomId, 'm.favourite');
    expect(await client.getRoomTags(roomId)).toEqual({ tags: {} });
  });

  it('delivers tag changes to /sync as m.tag room account data', async () => {
    const base = (await api(alice, 'GET', '/sync')).body;
    expect((await api(alice, 'PUT', tagPath(alice, 'm.lowpriority'), { order: 0.5 })).status).toBe(200);
    const inc = (await api(alice, 'GET', `/sync?since=${enc(base.next_batch)}`)).body as Json;
    expect(inc.rooms.join[roomId].account_data.events).toEqual([{ type: 'm.tag', content: { tags: { 'm.lowpriority': { order: 0.5 } } } }]);
    // The same entry is readable through the account data API.
    const viaAccountData = await api(alice, 'GET', `/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/m.tag`);
    expect(viaAccountData.body).toEqual({ tags: { 'm.lowpriority': { order: 0.5 } } });
    await api(alice, 'DELETE', tagPath(alice, 'm.lowpriority'));
    const after = (await api(alice, 'GET', `/sync?since=${enc(inc.next_batch)}`)).body as Json;
    expect(after.rooms.join[roomId].account_data.events).toEqual([{ type: 'm.tag', content: { tags: {} } }]);
  });

  it('keeps every tag when several are set at once', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `u.tag${i}`);
    const results = await Promise.all(names.map((n, i) => api(alice, 'PUT', tagPath(alice, n), { order: i / 10 })));
    expect(results.every((r) => r.status === 200)).toBe(true);
    const tags = (await api(alice, 'GET', tagPath(alice))).body.tags;
    expect(Object.keys(tags).sort()).toEqual(names);
    await Promise.all(names.map((n) => api(alice, 'DELETE', tagPath(alice, n))));
  });

  it('refuses other users’ tags and orders outside 0…1', async () => {
    expect((await api(bob, 'GET', tagPath(alice))).status).toBe(403);
    expect((await api(bob, 'PUT', tagPath(alice, 'u.x'), {})).body.errcode).toBe('M_FORBIDDEN');
    expect((await api(bob, 'DELETE', tagPath(alice, 'u.x'))).status).toBe(403);
    const tooBig = await api(alice, 'PUT', tagPath(alice, 'u.x'), { order: 2 });
    expect(tooBig.status).toBe(400);
    expect(tooBig.body.errcode).toBe('M_BAD_JSON');
    expect((await api(alice, 'PUT', tagPath(alice, 'u.x'), { order: 'first' })).status).toBe(400);
    expect((await api(alice, 'GET', tagPath(alice))).body.tags).toEqual({});
  });
});
