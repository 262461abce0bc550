import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const enc = encodeURIComponent;

// Spec: Client-Server API "Restricted rooms": members of an allowed room (a space) join without an invite.
describe.each(testDialects())('restricted joins on one server on %s', (dialect) => {
  let server: TestServer;
  let admin: TestUser, member: TestUser, outsider: TestUser;
  let space: string;

  const api = (user: TestUser, method: string, path: string, body?: unknown) =>
    request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });
  const restrictedRoom = async (joinRule: 'restricted' | 'knock_restricted') => {
    const res = await api(admin, 'POST', '/createRoom', {
      preset: 'private_chat',
      room_version: '10',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: joinRule, allow: [{ type: 'm.room_membership', room_id: space }] } }],
    });
    expect(res.status).toBe(200);
    return res.body.room_id as string;
  };
  const joined = async (roomId: string) => Object.keys((await api(admin, 'GET', `/rooms/${enc(roomId)}/joined_members`)).body.joined).sort();

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    [admin, member, outsider] = (await Promise.all(['admin', 'member', 'outsider'].map((u) => registerUser(server.baseUrl, u)))) as [TestUser, TestUser, TestUser];
    space = (await api(admin, 'POST', '/createRoom', { preset: 'public_chat', creation_content: { type: 'm.space' } })).body.room_id;
    expect((await api(member, 'POST', `/join/${enc(space)}`, {})).status).toBe(200);
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a member of the space joins; the join names a local user who may invite as its authoriser', async () => {
    const roomId = await restrictedRoom('restricted');
    const join = await api(member, 'POST', `/join/${enc(roomId)}`, {});
    expect(join.status).toBe(200);
    expect(await joined(roomId)).toEqual([admin.userId, member.userId].sort());
    const ev = await api(admin, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(member.userId)}`);
    expect(ev.body).toMatchObject({ membership: 'join', join_authorised_via_users_server: admin.userId });
  });

  it('knock_restricted rooms let space members join the same way', async () => {
    const roomId = await restrictedRoom('knock_restricted');
    expect((await api(member, 'POST', `/rooms/${enc(roomId)}/join`, {})).status).toBe(200);
    expect(await joined(roomId)).toEqual([admin.userId, member.userId].sort());
  });

  it('someone outside the space is refused with 403, even naming an authoriser in the body', async () => {
    const roomId = await restrictedRoom('restricted');
    for (const body of [{}, { join_authorised_via_users_server: admin.userId }]) {
      const join = await api(outsider, 'POST', `/join/${enc(roomId)}`, body);
      expect(join.status).toBe(403);
      expect(join.body.errcode).toBe('M_FORBIDDEN');
    }
    expect(await joined(roomId)).toEqual([admin.userId]);
  });

  it('custom keys of a /join body reach the member event; membership, profile and authoriser keys do not', async () => {
    const roomId = (await api(admin, 'POST', '/createRoom', { preset: 'public_chat', room_alias_name: 'custom-join' })).body.room_id as string;
    const body = { foo: 'bar', membership: 'leave', displayname: 'Mallory', join_authorised_via_users_server: admin.userId, reason: 'hi' };
    expect((await api(member, 'POST', `/rooms/${enc(roomId)}/join`, body)).status).toBe(200);
    const ev = (await api(admin, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(member.userId)}`)).body;
    expect(ev).toMatchObject({ foo: 'bar', membership: 'join', reason: 'hi' });
    expect(ev.displayname).not.toBe('Mallory');
    expect(ev.join_authorised_via_users_server).toBeUndefined();
    // Through an alias too (SyTest "POST /join/:room_alias can join a room with custom content").
    expect((await api(outsider, 'POST', `/join/${enc(`#custom-join:${server.serverName}`)}`, { foo: 'baz' })).status).toBe(200);
    expect((await api(admin, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(outsider.userId)}`)).body).toMatchObject({ foo: 'baz', membership: 'join' });
  });
});
