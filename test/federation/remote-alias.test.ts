import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { enc, startFleet, type Fleet } from './helpers.js';

// GET /directory/room/{alias} for an alias of another server asks that server (GET /query/directory).
//   A localhost:<port>  — alice, who looks the alias up
//   B 127.0.0.1:<port>  — bob, whose room has #lobby:B; a bridge (application service) that creates #bridge_*:B on query
describe.each(testDialects())('resolving aliases of other servers, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;
  let bridge: Server;
  let dir: string;
  const lookUp = (server: TestServer, alias: string) => request(server.baseUrl, 'GET', `/_matrix/client/v3/directory/room/${enc(alias)}`, { token: alice.accessToken });

  beforeAll(async () => {
    // The bridge answers the homeserver's alias query by creating the room through B's client API.
    let hsUrl = '';
    bridge = createServer((req, res) => {
      const alias = /^\/_matrix\/app\/v1\/rooms\/#(bridge_[^:]+):/.exec(decodeURIComponent(req.url ?? ''));
      const answer = (status: number) => res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      if (req.method !== 'GET' || !alias) return void answer(req.method === 'PUT' ? 200 : 404);
      void request(hsUrl, 'POST', '/_matrix/client/v3/createRoom', { token: 'as-token-bridge', body: { room_alias_name: alias[1], preset: 'public_chat' } }).then((r) => answer(r.status === 200 ? 200 : 404));
    });
    await new Promise<void>((r) => bridge.listen(0, '127.0.0.1', () => r()));
    dir = mkdtempSync(join(tmpdir(), 'skjol-alias-as-'));
    const registration = join(dir, 'bridge.yaml');
    writeFileSync(
      registration,
      `id: bridge\nurl: "http://127.0.0.1:${(bridge.address() as AddressInfo).port}"\nas_token: as-token-bridge\nhs_token: hs-token-bridge\n` +
        `sender_localpart: bridgebot\nnamespaces:\n  users: []\n  aliases:\n    - exclusive: true\n      regex: "#bridge_.*"\nrate_limited: false\n`,
    );
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1'], { app_service_config_files: [registration] });
    [A, B] = fleet.servers as [TestServer, TestServer];
    hsUrl = B.baseUrl;
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat', room_alias_name: 'lobby' } });
    roomId = created.body.room_id;
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
    bridge?.closeAllConnections();
    await new Promise<void>((r) => (bridge ? bridge.close(() => r()) : r()));
    if (dir) rmSync(dir, { recursive: true, force: true });
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

  it('B’s /query/directory answers other servers for its own aliases, including those its bridge creates on query', async () => {
    const client = A.hs.services.federation.client;
    const path = '/_matrix/federation/v1/query/directory';
    expect(await client.get(B.serverName, path, { room_alias: `#lobby:${B.serverName}` })).toEqual({ room_id: roomId, servers: [B.serverName] });
    const bridged = await client.get<{ room_id: string; servers: string[] }>(B.serverName, path, { room_alias: `#bridge_irc:${B.serverName}` });
    expect(bridged).toEqual({ room_id: expect.stringMatching(/^!/), servers: [B.serverName] });
    expect((await lookUp(A, `#bridge_irc:${B.serverName}`)).body.room_id).toBe(bridged.room_id);
    await expect(client.get(B.serverName, path, { room_alias: `#nothing-here:${B.serverName}` })).rejects.toMatchObject({ remoteStatus: 404, remoteErrcode: 'M_NOT_FOUND' });
    // B does not ask a third server on A's behalf.
    await expect(client.get(B.serverName, path, { room_alias: `#lobby:${A.serverName}` })).rejects.toMatchObject({ remoteStatus: 404, remoteErrcode: 'M_NOT_FOUND' });
  });
});
