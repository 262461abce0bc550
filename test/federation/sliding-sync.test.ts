import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/homeserver.js';
import { testDialects } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, send, startPair, type Fleet } from './helpers.js';

type Json = any;

const SS = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';

// Sliding sync for rooms of another server: an invite to a room this server has never seen (only the stripped
// state the invite carried), its rejection (an out-of-band leave), and a joined remote room's messages.
describe.each(testDialects())('sliding sync with rooms of another server, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;

  const ss = async (body: Json, pos?: string): Promise<Json> => {
    const res = await request(A.baseUrl, 'POST', `${SS}${pos ? `?pos=${enc(pos)}` : ''}`, { token: alice.accessToken, body });
    if (res.status !== 200) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const lists = {
    lists: {
      all: { ranges: [[0, 9]], timeline_limit: 5, required_state: [['m.room.member', '$ME'], ['m.room.name', '']] },
      invites: { ranges: [[0, 9]], timeline_limit: 5, required_state: [], filters: { is_invite: true } },
      spaces: { ranges: [[0, 9]], timeline_limit: 0, required_state: [], filters: { room_types: ['m.space'] } },
      secret: { ranges: [[0, 9]], timeline_limit: 0, required_state: [], filters: { is_encrypted: true } },
    },
  };

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
  }, 60_000);
  afterAll(async () => {
    await fleet?.close();
  });

  it('shows an invite to an unknown room from its stripped state, and its rejection once', async () => {
    const created = await api(B, bob, 'POST', '/createRoom', { preset: 'private_chat', name: 'Far away', creation_content: { type: 'm.space' } });
    const roomId = created.body.room_id as string;
    expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: alice.userId })).status).toBe(200);
    const first = await eventually(async () => {
      const res = await ss(lists);
      return res.rooms[roomId] ? res : undefined;
    }, 'the invite on A');
    const room = first.rooms[roomId];
    expect(room.initial).toBe(true);
    expect(room.name).toBe('Far away');
    expect(room.invite_state.find((e: Json) => e.type === 'm.room.member' && e.state_key === alice.userId).content.membership).toBe('invite');
    expect(first.lists.invites.ops[0].room_ids).toEqual([roomId]);
    expect(first.lists.spaces.ops[0].room_ids).toEqual([roomId]);
    expect(first.lists.secret.ops[0].room_ids).toEqual([roomId]);

    expect((await api(A, alice, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    const second = await ss(lists, first.pos);
    expect(second.rooms[roomId]).toBeDefined();
    const leave = [...(second.rooms[roomId].timeline ?? []), ...(second.rooms[roomId].required_state ?? [])].find((e: Json) => e.type === 'm.room.member');
    expect(leave).toMatchObject({ state_key: alice.userId, content: { membership: 'leave' } });
    expect(second.lists.invites.count).toBe(0);
    const third = await ss(lists, second.pos);
    expect(third.lists.all.ops[0].room_ids).not.toContain(roomId);
  });

  it('brings messages of a joined room of another server', async () => {
    const created = await api(B, bob, 'POST', '/createRoom', { preset: 'public_chat', name: 'Shared' });
    const roomId = created.body.room_id as string;
    expect((await api(A, alice, 'POST', `/join/${enc(roomId)}?server_name=${enc(B.serverName)}`, {})).status).toBe(200);
    const first = await ss(lists);
    expect(first.rooms[roomId].name).toBe('Shared');
    await send(B, bob, roomId, 'over federation');
    const next = await eventually(async () => {
      const res = await ss(lists, first.pos);
      return res.rooms[roomId]?.timeline?.length ? res : undefined;
    }, 'the message on A');
    expect(next.rooms[roomId].timeline.map((e: Json) => e.content.body)).toContain('over federation');
    expect(next.rooms[roomId].initial).toBeUndefined();
  });
});
