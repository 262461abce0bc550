import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';

// Spec: Server-Server API, "Querying keys through another server". An origin that accepts the connection
// and never answers must not hold the notary's answer (found by test/http/fuzz.test.ts: answers after 5 s).
// Before the fix the answer waited for the federation client's 30 s timeout, beyond these tests' 15 s.
describe.each(testDialects())('notary key query with an origin that never answers on %s', (dialect) => {
  let server: TestServer;
  let tarpit: Server;
  let origin: string;
  const held = new Set<Socket>();

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    tarpit = createServer((socket) => {
      held.add(socket);
      socket.on('close', () => held.delete(socket));
    });
    await new Promise<void>((resolve) => tarpit.listen(0, '127.0.0.1', resolve));
    origin = `127.0.0.1:${(tarpit.address() as { port: number }).port}`;
  });

  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise((resolve) => tarpit?.close(resolve));
    await server?.close();
  });

  it('POST /_matrix/key/v2/query answers while the origin still holds the connection', async () => {
    const res = await request(server.baseUrl, 'POST', '/_matrix/key/v2/query', { body: { server_keys: { [origin]: {} } } });
    expect(res.status).toBe(200);
    expect(res.body.server_keys).toEqual([]);
    // The fetch still waits on the origin: the answer did not wait for the federation timeout.
    expect(held.size).toBeGreaterThan(0);
  }, 15_000);

  it('GET /_matrix/key/v2/query/{serverName} answers while the origin still holds the connection', async () => {
    const res = await request(server.baseUrl, 'GET', `/_matrix/key/v2/query/${encodeURIComponent(origin)}`);
    expect(res.status).toBe(200);
    expect(res.body.server_keys).toEqual([]);
    expect(held.size).toBeGreaterThan(0);
  }, 15_000);
});
