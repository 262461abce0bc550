import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, startPair, type Fleet } from './helpers.js';

// The user directory of a server whose users left a remote public room: its members are no longer found
// (SyTest: "User in remote room doesn't appear in user directory after server left room").
describe.each(testDialects())('user directory across servers on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
  }, 60_000);
  afterAll(async () => {
    await fleet?.close();
  });

  const found = async (): Promise<boolean> => {
    const res = await api(B, bob, 'POST', '/user_directory/search', { search_term: 'QAZWSXEDCRFVTGBYHNUJ' });
    expect(res.status).toBe(200);
    return res.body.results.some((r: { user_id: string }) => r.user_id === alice.userId);
  };

  it('finds the members of a remote public room while a local user is in it, and not after they all left', async () => {
    expect((await api(A, alice, 'PUT', `/profile/${enc(alice.userId)}/displayname`, { displayname: 'QAZWSXEDCRFVTGBYHNUJ' })).status).toBe(200);
    const roomId = (await api(A, alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id as string;
    expect((await api(B, bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect(await found()).toBe(true);
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    expect(await found()).toBe(false);
  });
});
