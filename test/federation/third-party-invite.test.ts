import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { ID_ACCESS_TOKEN, TestIdentityServer } from '../helpers/identityServer.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { api, enc, eventually, membershipOf, startFleet, sync, type Fleet } from './helpers.js';

// Third-party invites across two Skjól servers over HTTPS, with a real identity server on loopback:
//   A localhost:<port>  — alice, who owns the rooms and invites by email
//   B 127.0.0.1:<port>  — bob (the email's owner, told about by the identity server) and carol
describe.each(testDialects())('third-party invites over federation on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser, carol: TestUser;
  let is: TestIdentityServer;

  beforeAll(async () => {
    is = await new TestIdentityServer().start();
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1'], { use_insecure_ssl_client_just_for_testing_do_not_use: true });
    [A, B] = fleet.servers as [TestServer, TestServer];
    alice = await registerUser(A.baseUrl, 'alice');
    [bob, carol] = [await registerUser(B.baseUrl, 'bob'), await registerUser(B.baseUrl, 'carol')];
  }, 60_000);
  afterAll(async () => {
    await fleet?.close();
    await is?.close();
  });

  const invite3pid = (roomId: string, address: string) =>
    api(A, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { id_server: is.name, id_access_token: ID_ACCESS_TOKEN, medium: 'email', address });

  it('B, not in the room, has A make the invite (exchange_third_party_invite); bob sees it and joins', async () => {
    const roomId = (await api(A, alice, 'POST', '/createRoom', { preset: 'private_chat' })).body.room_id as string;
    expect((await invite3pid(roomId, 'bob@example.org')).status).toBe(200);
    const bound = await is.bindAndNotify(B.baseUrl, 'email', 'bob@example.org', bob.userId);
    expect(bound.status).toBe(200);
    const invite = await eventually(async () => (await sync(B, bob)).rooms?.invite?.[roomId], 'bob’s invite');
    const strippedMembers = invite.invite_state.events.filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key);
    expect(strippedMembers).toContain(alice.userId);
    const m = await api(A, alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`);
    expect([m.body.membership, m.body.third_party_invite?.display_name]).toEqual(['invite', 'Bob']);
    expect((await api(B, bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    await eventually(async () => (await membershipOf(A, alice, roomId, bob.userId)) === 'join', 'bob joined on A');
  }, 60_000);

  it('B, in the room through carol, makes the invite itself on alice’s behalf and A accepts it', async () => {
    const roomId = (await api(A, alice, 'POST', '/createRoom', { preset: 'private_chat', invite: [carol.userId] })).body.room_id as string;
    await eventually(async () => (await sync(B, carol)).rooms?.invite?.[roomId], 'carol’s invite');
    expect((await api(B, carol, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect((await invite3pid(roomId, 'bob2@example.org')).status).toBe(200);
    const token = is.invites.find((i) => i.address === 'bob2@example.org')!.token;
    await eventually(async () => (await api(B, carol, 'GET', `/rooms/${enc(roomId)}/state/m.room.third_party_invite/${enc(token)}`)).status === 200, 'the 3PID invite on B');

    expect((await is.bindAndNotify(B.baseUrl, 'email', 'bob2@example.org', bob.userId)).status).toBe(200);
    await eventually(async () => (await membershipOf(A, alice, roomId, bob.userId)) === 'invite', 'bob invited on A');
    expect((await api(B, bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    await eventually(async () => (await membershipOf(A, alice, roomId, bob.userId)) === 'join', 'bob joined on A');
  }, 60_000);
});
