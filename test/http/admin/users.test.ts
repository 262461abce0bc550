import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../../helpers/homeserver.js';
import { request } from '../../helpers/http.js';
import { loginDevice, type TestUser } from '../../helpers/users.js';
import { admin, enc, expectAdminOnly, makeAdmin, registerUser } from './helpers.js';

// Synapse admin API, "User Admin API": as an admin, and refused to everyone else.
describe.each(testDialects())('Synapse admin API: users, on %s', (dialect) => {
  let server: TestServer;
  let root: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    root = await makeAdmin(server);
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('refuses every user endpoint without a token (401) and to non-admins (403)', async () => {
    const u = enc(bob.userId);
    for (const [method, path, body] of [
      ['GET', '/v2/users'],
      ['GET', `/v2/users/${u}`],
      ['PUT', `/v2/users/${u}`, { displayname: 'x' }],
      ['GET', `/v1/users/${u}/admin`],
      ['PUT', `/v1/users/${u}/admin`, { admin: true }],
      ['POST', `/v1/reset_password/${u}`, { new_password: 'x' }],
      ['POST', `/v1/deactivate/${u}`, {}],
      ['GET', `/v1/whois/${u}`],
      ['GET', `/v1/users/${u}/joined_rooms`],
      ['GET', `/v2/users/${u}/devices`],
      ['GET', `/v2/users/${u}/devices/${enc(bob.deviceId)}`],
      ['DELETE', `/v2/users/${u}/devices/${enc(bob.deviceId)}`],
      ['POST', `/v2/users/${u}/delete_devices`, { devices: [bob.deviceId] }],
    ] as Array<[string, string, unknown?]>) {
      await expectAdminOnly(server, alice, method, path, body);
    }
    // Nothing happened to bob.
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: bob.accessToken })).status).toBe(200);
  });

  it('lists users with paging, filters and order', async () => {
    const all = await admin(server, 'GET', '/v2/users', root.accessToken);
    expect(all.status).toBe(200);
    expect(all.body.total).toBe(3);
    expect(all.body.users.map((u: { name: string }) => u.name)).toEqual(['@alice:localhost', '@bob:localhost', '@root:localhost']);
    expect(all.body.next_token).toBeUndefined();
    const first = all.body.users[0];
    expect(first).toMatchObject({ name: '@alice:localhost', is_guest: false, admin: false, deactivated: false, erased: false, displayname: 'alice', avatar_url: null });
    expect(first.creation_ts).toBeGreaterThan(1_600_000_000_000);

    const page = await admin(server, 'GET', '/v2/users?limit=2', root.accessToken);
    expect(page.body.users).toHaveLength(2);
    expect(page.body.next_token).toBe('2');
    const rest = await admin(server, 'GET', `/v2/users?limit=2&from=${page.body.next_token}`, root.accessToken);
    expect(rest.body.users.map((u: { name: string }) => u.name)).toEqual(['@root:localhost']);
    expect(rest.body.next_token).toBeUndefined();

    const byName = await admin(server, 'GET', '/v2/users?name=LIC', root.accessToken);
    expect(byName.body.users.map((u: { name: string }) => u.name)).toEqual(['@alice:localhost']);
    // The server name is not part of the localpart.
    expect((await admin(server, 'GET', '/v2/users?name=localhost', root.accessToken)).body.total).toBe(0);
    expect((await admin(server, 'GET', '/v2/users?user_id=localhost', root.accessToken)).body.total).toBe(3);
    expect((await admin(server, 'GET', '/v2/users?name=%25', root.accessToken)).body.total).toBe(0);
    const admins = await admin(server, 'GET', '/v2/users?admins=true', root.accessToken);
    expect(admins.body.users.map((u: { name: string }) => u.name)).toEqual(['@root:localhost']);
    const back = await admin(server, 'GET', '/v2/users?order_by=name&dir=b', root.accessToken);
    expect(back.body.users[0].name).toBe('@root:localhost');
    expect((await admin(server, 'GET', '/v2/users?order_by=creation_ts&dir=b', root.accessToken)).status).toBe(200);
    expect((await admin(server, 'GET', '/v2/users?order_by=last_seen_ts', root.accessToken)).status).toBe(200);
    expect((await admin(server, 'GET', '/v2/users?limit=999999999', root.accessToken)).body.total).toBe(3);
  });

  it('refuses bad list parameters with 400', async () => {
    for (const q of ['from=-1', 'limit=-5', 'limit=abc', 'from=1e400', 'guests=maybe', 'deactivated=1', 'order_by=password_hash', 'dir=x']) {
      const res = await admin(server, 'GET', `/v2/users?${q}`, root.accessToken);
      expect(res.status, q).toBe(400);
      expect(res.body.errcode, q).toBe('M_INVALID_PARAM');
    }
  });

  it('shows one user; unknown is 404, remote or malformed 400', async () => {
    const res = await admin(server, 'GET', `/v2/users/${enc(alice.userId)}`, root.accessToken);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: alice.userId, displayname: 'alice', admin: false, deactivated: false, threepids: [], external_ids: [], user_type: null });
    expect(res.body.creation_ts).toBeLessThan(10_000_000_000);
    expect(res.body.last_seen_ts).toEqual(expect.any(Number));
    const unknown = await admin(server, 'GET', `/v2/users/${enc('@nobody:localhost')}`, root.accessToken);
    expect(unknown).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
    expect((await admin(server, 'GET', `/v2/users/${enc('@x:elsewhere.example')}`, root.accessToken)).status).toBe(400);
    for (const hostile of ['__proto__', 'constructor', '@', '@:', `@${'a'.repeat(5000)}:localhost`, '%00']) {
      const r = await admin(server, 'GET', `/v2/users/${enc(hostile)}`, root.accessToken);
      expect([400, 404], hostile).toContain(r.status);
    }
  });

  it('creates a user with PUT (201), then modifies it (200)', async () => {
    const id = '@carol:localhost';
    const created = await admin(server, 'PUT', `/v2/users/${enc(id)}`, root.accessToken, { password: 'carol-pw-1', displayname: 'Carol', admin: false });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: id, displayname: 'Carol', admin: false, deactivated: false });
    const carol = await loginDevice(server.baseUrl, { userId: id, accessToken: '', deviceId: '', password: 'carol-pw-1' });

    const modified = await admin(server, 'PUT', `/v2/users/${enc(id)}`, root.accessToken, {
      displayname: 'Carol Admin',
      avatar_url: 'mxc://localhost/abc',
      admin: true,
      password: 'carol-pw-2',
      logout_devices: false,
    });
    expect(modified.status).toBe(200);
    expect(modified.body).toMatchObject({ displayname: 'Carol Admin', avatar_url: 'mxc://localhost/abc', admin: true });
    // Kept logged in (logout_devices: false), and the new password works.
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: carol.accessToken })).status).toBe(200);
    await loginDevice(server.baseUrl, { userId: id, accessToken: '', deviceId: '', password: 'carol-pw-2' });
    const profile = await request(server.baseUrl, 'GET', `/_matrix/client/v3/profile/${enc(id)}`, { token: carol.accessToken });
    expect(profile.body.displayname).toBe('Carol Admin');

    // A password change logs every device out by default.
    expect((await admin(server, 'PUT', `/v2/users/${enc(id)}`, root.accessToken, { password: 'carol-pw-3' })).status).toBe(200);
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: carol.accessToken })).status).toBe(401);

    // Deactivate through PUT, then reactivate with a password.
    const off = await admin(server, 'PUT', `/v2/users/${enc(id)}`, root.accessToken, { deactivated: true });
    expect(off.body.deactivated).toBe(true);
    const noPw = await admin(server, 'PUT', `/v2/users/${enc(id)}`, root.accessToken, { deactivated: false });
    expect(noPw.status).toBe(400);
    const on = await admin(server, 'PUT', `/v2/users/${enc(id)}`, root.accessToken, { deactivated: false, password: 'carol-pw-4' });
    expect(on.body.deactivated).toBe(false);
    await loginDevice(server.baseUrl, { userId: id, accessToken: '', deviceId: '', password: 'carol-pw-4' });
  });

  it('refuses bad PUT bodies with 400', async () => {
    const u = enc('@dan:localhost');
    for (const body of [{ admin: 'yes' }, { displayname: 5 }, { avatar_url: 'http://x' }, { threepids: [{ medium: 'email', address: 'a@b' }] }, { displayname: 'a'.repeat(2000) }]) {
      const res = await admin(server, 'PUT', `/v2/users/${u}`, root.accessToken, body);
      expect(res.status, JSON.stringify(body).slice(0, 40)).toBe(400);
    }
    expect((await admin(server, 'PUT', `/v2/users/${enc('@dan:elsewhere.example')}`, root.accessToken, {})).status).toBe(400);
    expect((await admin(server, 'PUT', `/v2/users/${enc('@BAD NAME:localhost')}`, root.accessToken, {})).status).toBe(400);
    expect((await admin(server, 'PUT', `/v2/users/${enc(root.userId)}`, root.accessToken, { admin: false })).status).toBe(400);
    expect((await admin(server, 'GET', `/v2/users/${u}`, root.accessToken)).status).toBe(404);
  });

  it('reads and sets the admin flag', async () => {
    expect((await admin(server, 'GET', `/v1/users/${enc(bob.userId)}/admin`, root.accessToken)).body).toEqual({ admin: false });
    expect((await admin(server, 'PUT', `/v1/users/${enc(bob.userId)}/admin`, root.accessToken, { admin: true })).status).toBe(200);
    expect((await admin(server, 'GET', `/v1/users/${enc(bob.userId)}/admin`, bob.accessToken)).body).toEqual({ admin: true });
    expect((await admin(server, 'PUT', `/v1/users/${enc(bob.userId)}/admin`, root.accessToken, { admin: false })).status).toBe(200);
    expect((await admin(server, 'GET', `/v1/users/${enc(bob.userId)}/admin`, bob.accessToken)).status).toBe(403);
    expect((await admin(server, 'PUT', `/v1/users/${enc('@ghost:localhost')}/admin`, root.accessToken, { admin: true })).status).toBe(404);
    expect((await admin(server, 'PUT', `/v1/users/${enc(bob.userId)}/admin`, root.accessToken, { admin: 'true' })).status).toBe(400);
  });

  it('resets a password and logs devices out', async () => {
    const eve = await registerUser(server.baseUrl, 'eve');
    const res = await admin(server, 'POST', `/v1/reset_password/${enc(eve.userId)}`, root.accessToken, { new_password: 'eve-new-pw' });
    expect(res).toMatchObject({ status: 200, body: {} });
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: eve.accessToken })).status).toBe(401);
    await loginDevice(server.baseUrl, { ...eve, password: 'eve-new-pw' });
    expect((await admin(server, 'POST', `/v1/reset_password/${enc('@ghost:localhost')}`, root.accessToken, { new_password: 'x' })).status).toBe(404);
    expect((await admin(server, 'POST', `/v1/reset_password/${enc(eve.userId)}`, root.accessToken, {})).status).toBe(400);
  });

  it('whois, joined rooms and devices', async () => {
    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    const whois = await admin(server, 'GET', `/v1/whois/${enc(alice.userId)}`, root.accessToken);
    expect(whois.body.user_id).toBe(alice.userId);
    expect(Object.keys(whois.body.devices)).toContain(alice.deviceId);
    const joined = await admin(server, 'GET', `/v1/users/${enc(alice.userId)}/joined_rooms`, root.accessToken);
    expect(joined.body).toEqual({ joined_rooms: [room.body.room_id], total: 1 });
    expect((await admin(server, 'GET', `/v1/users/${enc('@ghost:localhost')}/joined_rooms`, root.accessToken)).status).toBe(404);

    const second = await loginDevice(server.baseUrl, alice, 'SECOND');
    const devices = await admin(server, 'GET', `/v2/users/${enc(alice.userId)}/devices`, root.accessToken);
    expect(devices.body.total).toBe(2);
    expect(devices.body.devices.map((d: { device_id: string }) => d.device_id).sort()).toEqual([alice.deviceId, 'SECOND'].sort());
    expect(devices.body.devices[0]).toHaveProperty('last_seen_ts');
    const one = await admin(server, 'GET', `/v2/users/${enc(alice.userId)}/devices/SECOND`, root.accessToken);
    expect(one.body).toMatchObject({ device_id: 'SECOND', user_id: alice.userId });
    expect((await admin(server, 'GET', `/v2/users/${enc(alice.userId)}/devices/NOPE`, root.accessToken)).status).toBe(404);
    expect((await admin(server, 'DELETE', `/v2/users/${enc(alice.userId)}/devices/SECOND`, root.accessToken)).status).toBe(200);
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: second.accessToken })).status).toBe(401);
    const third = await loginDevice(server.baseUrl, alice, 'THIRD');
    expect((await admin(server, 'POST', `/v2/users/${enc(alice.userId)}/delete_devices`, root.accessToken, { devices: ['THIRD'] })).status).toBe(200);
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: third.accessToken })).status).toBe(401);
    expect((await admin(server, 'GET', `/v2/users/${enc(alice.userId)}/devices`, root.accessToken)).body.total).toBe(1);
  });

  it('deactivates a user (and refuses unknown ones with 404)', async () => {
    const frank = await registerUser(server.baseUrl, 'frank');
    const res = await admin(server, 'POST', `/v1/deactivate/${enc(frank.userId)}`, root.accessToken, { erase: false });
    expect(res).toMatchObject({ status: 200, body: { id_server_unbind_result: 'success' } });
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: frank.accessToken })).status).toBe(401);
    expect((await admin(server, 'GET', `/v2/users/${enc(frank.userId)}`, root.accessToken)).body.deactivated).toBe(true);
    expect((await admin(server, 'GET', '/v2/users?deactivated=true&name=frank', root.accessToken)).body.total).toBe(1);
    expect((await admin(server, 'GET', '/v2/users?name=frank', root.accessToken)).body.total).toBe(0);
    expect((await admin(server, 'POST', `/v1/deactivate/${enc('@ghost:localhost')}`, root.accessToken, {})).status).toBe(404);
    expect((await admin(server, 'POST', `/v1/deactivate/${enc(frank.userId)}`, root.accessToken, { erase: 'yes' })).status).toBe(400);
  });
});
