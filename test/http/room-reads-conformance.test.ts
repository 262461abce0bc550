import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// Room reads, profiles and the user directory as SyTest checks them (tests/10apidoc, 30rooms, 52user-directory).

type Json = any;

describe.each(testDialects())('room reads as SyTest expects them on %s', (dialect) => {
  let server: TestServer;
  let n = 0;
  const enc = encodeURIComponent;
  const api = (u: TestUser, method: string, path: string, body?: unknown, skipSpecCheck = false) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: u.accessToken, skipSpecCheck, ...(body !== undefined ? { body } : {}) });
  const user = () => registerUser(server.baseUrl, `reads${++n}`);
  async function ok(res: Promise<{ status: number; body: Json }>): Promise<Json> {
    const r = await res;
    if (r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
  const createRoom = async (u: TestUser, body: Record<string, unknown> = {}): Promise<string> => (await ok(api(u, 'POST', '/createRoom', body))).room_id;
  const putState = (u: TestUser, roomId: string, type: string, content: object) => ok(api(u, 'PUT', `/rooms/${enc(roomId)}/state/${type}/`, content));
  const found = async (searcher: TestUser, term: string, who: TestUser): Promise<boolean> =>
    (await ok(api(searcher, 'POST', '/user_directory/search', { search_term: term }))).results.some((r: Json) => r.user_id === who.userId);

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('joined_members always has display_name and avatar_url, empty when unset (as Dendrite)', async () => {
    const alice = await user();
    const roomId = await createRoom(alice);
    const body = await ok(api(alice, 'GET', `/rooms/${enc(roomId)}/joined_members`));
    expect(body.joined[alice.userId]).toEqual({ display_name: alice.userId.slice(1).split(':')[0], avatar_url: '' });
  });

  it('/context of a room the user may not read is 403', async () => {
    const [alice, bob] = [await user(), await user()];
    const roomId = await createRoom(alice);
    const eventId = (await ok(api(alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hello, world' }))).event_id;
    const res = await api(bob, 'GET', `/rooms/${enc(roomId)}/context/${enc(eventId)}`);
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe('M_FORBIDDEN');
  });

  it('a profile field not set reads as {} for a known user, and 404 for an unknown one', async () => {
    const alice = await user();
    expect(await ok(api(alice, 'GET', `/profile/${enc(alice.userId)}/avatar_url`, undefined, true))).toEqual({});
    await ok(api(alice, 'PUT', `/profile/${enc(alice.userId)}/avatar_url`, { avatar_url: 'mxc://localhost/lemur' }));
    expect(await ok(api(alice, 'GET', `/profile/${enc(alice.userId)}/avatar_url`))).toEqual({ avatar_url: 'mxc://localhost/lemur' });
    expect((await api(alice, 'GET', `/profile/${enc('@nobody:localhost')}/avatar_url`)).status).toBe(404);
  });

  it('users find themselves in the directory while in a public room, under their new name too', async () => {
    const [creator, alice] = [await user(), await user()];
    await ok(api(alice, 'PUT', `/profile/${enc(alice.userId)}/displayname`, { displayname: 'QWERTYUIOPASDFGHJKLZ' }));
    const roomId = await createRoom(creator, { preset: 'public_chat' });
    expect(await found(alice, 'QWERTYUIOPASDFGHJKLZ', alice)).toBe(false);
    await ok(api(alice, 'POST', `/join/${enc(roomId)}`, {}));
    expect(await found(alice, 'QWERTYUIOPASDFGHJKLZ', alice)).toBe(true);
    await ok(api(alice, 'PUT', `/profile/${enc(alice.userId)}/displayname`, { displayname: 'ZLKJHGFDSAPOIUYTREWQ' }));
    expect(await found(alice, 'ZLKJHGFDSAPOIUYTREWQ', alice)).toBe(true);
    await ok(api(alice, 'POST', `/rooms/${enc(roomId)}/leave`, {}));
    expect(await found(alice, 'ZLKJHGFDSAPOIUYTREWQ', alice)).toBe(false);
  });

  it('users appear and disappear from the directory as their private room opens and closes', async () => {
    const [creator, alice] = [await user(), await user()];
    await ok(api(alice, 'PUT', `/profile/${enc(alice.userId)}/displayname`, { displayname: 'MNBVCXZLKJHGFDSAPOIU' }));
    const roomId = await createRoom(creator, { preset: 'private_chat', invite: [alice.userId] });
    await ok(api(alice, 'POST', `/join/${enc(roomId)}`, {}));
    expect(await found(alice, 'MNBVCXZLKJHGFDSAPOIU', alice)).toBe(false);
    await putState(creator, roomId, 'm.room.join_rules', { join_rule: 'public' });
    expect(await found(alice, 'MNBVCXZLKJHGFDSAPOIU', alice)).toBe(true);
    await putState(creator, roomId, 'm.room.history_visibility', { history_visibility: 'world_readable' });
    await putState(creator, roomId, 'm.room.join_rules', { join_rule: 'invite' });
    expect(await found(alice, 'MNBVCXZLKJHGFDSAPOIU', alice)).toBe(true);
    await putState(creator, roomId, 'm.room.history_visibility', { history_visibility: 'shared' });
    expect(await found(alice, 'MNBVCXZLKJHGFDSAPOIU', alice)).toBe(false);
  });
});
