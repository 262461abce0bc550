import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { enc, startFleet, type Fleet } from './helpers.js';

// GET /directory/room/{alias} for an alias of another server asks that server (GET /query/directory).
//   A localhost:<port>  — alice, who looks the alias up
//   B 127.0.0.1:<port>  — bob, whose room has #lobby:B
describe.each(testDialects())('resolving aliases of other servers, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;
  const lookUp = (server: TestServer, alias: string) => request(server.baseUrl, 'GET', `/_matrix/client/v3/directory/room/${enc(alias)}`, { token: alice.accessToken });

  beforeAll(async () => {
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1']);
    [A, B] = fleet.servers as [TestServer, TestServer];
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat', room_alias_name: 'lobby' } });
    roomId = created.body.room_id;
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it('resolves #lobby:B on A through B, and answers 404 M_NOT_FOUND for an alias B does not have', async () => {
    const found = await lookUp(A, `#lobby:${B.serverName}`);
    expect(found.status).toBe(200);
    expect(found.body.room_id).toBe(roomId);
    expect(found.body.servers).toContain(B.serverName);
    expect(new Set(found.body.servers).size).toBe(found.body.servers.length);

    expect(await lookUp(A, `#nothing-here:${B.serverName}`)).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
  });

  it('answers 502 when the alias’s server cannot be reached', async () => {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    expect(await lookUp(A, '#lobby:127.0.0.1:1')).toMatchObject({ status: 502, body: { errcode: 'M_UNKNOWN' } });
  });

  it('B’s /query/directory answers other servers for its own aliases only', async () => {
    const client = A.hs.services.federation.client;
    const path = '/_matrix/federation/v1/query/directory';
    expect(await client.get(B.serverName, path, { room_alias: `#lobby:${B.serverName}` })).toEqual({ room_id: roomId, servers: [B.serverName] });
    await expect(client.get(B.serverName, path, { room_alias: `#nothing-here:${B.serverName}` })).rejects.toMatchObject({ remoteStatus: 404, remoteErrcode: 'M_NOT_FOUND' });
    // B does not ask a third server on A's behalf.
    await expect(client.get(B.serverName, path, { room_alias: `#lobby:${A.serverName}` })).rejects.toMatchObject({ remoteStatus: 404, remoteErrcode: 'M_NOT_FOUND' });
  });
});
