import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { loginDevice, registerUser, type TestUser } from '../helpers/users.js';

type Json = any;

const SS = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';

// MSC4186 Simplified Sliding Sync over raw HTTP, answered as Synapse 1.120 answers Element X.
describe.each(testDialects())('sliding sync (MSC4186) on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let txn = 0;
  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });

  async function ok(res: Promise<{ status: number; body: Json }>): Promise<Json> {
    const r = await res;
    if (r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
  const createRoom = async (user: TestUser, body: Record<string, unknown> = {}) => (await ok(api(user, 'POST', '/createRoom', body))).room_id as string;
  const send = async (user: TestUser, roomId: string, body: string) =>
    (await ok(api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, { msgtype: 'm.text', body }))).event_id as string;
  const ss = (user: TestUser, body: Json, query: { pos?: string; timeout?: number } = {}) => {
    const q = new URLSearchParams();
    if (query.pos !== undefined) q.set('pos', query.pos);
    if (query.timeout !== undefined) q.set('timeout', String(query.timeout));
    return request(server.baseUrl, 'POST', `${SS}?${q}`, { token: user.accessToken, body });
  };

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('gives a first window and then only what changed', async () => {
    const a = await createRoom(alice, { name: 'A' });
    const b = await createRoom(alice, { name: 'B' });
    await send(alice, a, 'a1');
    await send(alice, b, 'b1');
    const body = { lists: { all: { ranges: [[0, 9]], timeline_limit: 3, required_state: [['m.room.name', '']] } } };
    const first = await ok(ss(alice, body));
    expect(first.lists.all.count).toBe(2);
    expect(first.lists.all.ops[0].room_ids).toEqual([b, a]);
    expect(first.rooms[a].initial).toBe(true);
    expect(first.rooms[a].name).toBe('A');
    await send(alice, a, 'a2');
    const second = await ok(ss(alice, body, { pos: first.pos }));
    expect(Object.keys(second.rooms)).toEqual([a]);
    expect(second.rooms[a].initial).toBeUndefined();
    expect(second.rooms[a].timeline.map((e: Json) => e.content.body)).toEqual(['a2']);
    expect(second.lists.all.ops[0].room_ids).toEqual([a, b]);
  });
});
