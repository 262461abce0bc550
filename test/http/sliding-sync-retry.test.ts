import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

type Json = any;

const SS = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';

// A sliding sync answer that never reaches the client (a dropped connection, or matrix-js-sdk aborting its
// long-poll to change a list) is asked for again with the same `pos`: it must carry everything again.
describe.each(testDialects())('sliding sync retried pos on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const enc = encodeURIComponent;
  const api = async (user: TestUser, method: string, path: string, body?: unknown): Promise<Json> => {
    const r = await request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('sends the lazy-loaded members of a lost answer again', async () => {
    const roomId = (await api(alice, 'POST', '/createRoom', { name: 'R', preset: 'public_chat' })).room_id as string;
    await api(bob, 'POST', `/join/${enc(roomId)}`, {});
    for (let i = 0; i < 4; i++) await api(alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/a${i}`, { msgtype: 'm.text', body: `a${i}` });
    const body = { lists: { all: { ranges: [[0, 9]], timeline_limit: 2, required_state: [['m.room.member', '$LAZY']] } } };
    const ss = async (pos?: string): Promise<Json> => {
      const r = await request(server.baseUrl, 'POST', `${SS}${pos ? `?pos=${enc(pos)}` : ''}`, { token: alice.accessToken, body });
      if (r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };
    const members = (answer: Json): string[] => (answer.rooms[roomId]?.required_state ?? []).filter((e: Json) => e.type === 'm.room.member').map((e: Json) => e.state_key);

    const first = await ss();
    expect(members(first)).toEqual([alice.userId]);
    await api(bob, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/b1`, { msgtype: 'm.text', body: 'from bob' });
    const lost = await ss(first.pos);
    expect(members(lost)).toEqual([bob.userId]);
    const retried = await ss(first.pos);
    expect(retried.rooms[roomId].timeline.map((e: Json) => e.content.body)).toEqual(['from bob']);
    expect(members(retried)).toEqual([bob.userId]);
    // Carrying on from the retried answer, bob's member event is not sent a third time.
    await api(bob, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/b2`, { msgtype: 'm.text', body: 'bob again' });
    const next = await ss(retried.pos);
    expect(next.rooms[roomId].timeline.map((e: Json) => e.content.body)).toEqual(['bob again']);
    expect(members(next)).toEqual([]);
  });
});
