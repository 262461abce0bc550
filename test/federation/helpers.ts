// Shared by the federation tests: servers over real HTTPS on loopback (each with its own name and
// certificate, trusting one test CA), client API shortcuts and small polling helpers.
import { mkdtempSync, rmSync } from 'node:fs';
import type { Logger } from 'pino';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertSpecShaped } from '../helpers/specSchema.js';
import { freePort, startHomeserver, type Dialect, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { createTestCa, issueCert } from './tls.js';

export interface Fleet {
  servers: TestServer[];
  /** The test CA every server trusts, and the folder it lives in (to issue more certificates, e.g. for Synapse). */
  ca: { caPath: string; keyPath: string };
  dir: string;
  close(): Promise<void>;
}

/**
 * Starts one server per entry of `hosts` ('localhost' or '127.0.0.1'; the port makes each name unique).
 * Every federation response a server receives is checked against the spec's schemas.
 */
export async function startFleet(dialect: Dialect, hosts: string[], config: Record<string, unknown> = {}, loggers: Array<Logger | undefined> = []): Promise<Fleet> {
  const dir = mkdtempSync(join(tmpdir(), 'skjol-fed-'));
  const ca = createTestCa(dir);
  const servers: TestServer[] = [];
  for (const [i, host] of hosts.entries()) {
    const port = await freePort();
    const server = await startHomeserver({
      dialect,
      serverName: `${host}:${port}`,
      tls: { ...issueCert(dir, `s${i}`, ca), port },
      config: { federation_custom_ca_list: [ca.caPath], ...config },
      logger: loggers[i],
    });
    servers.push(specChecked(server));
  }
  return {
    servers,
    ca,
    dir,
    async close() {
      await Promise.all(servers.map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function specChecked(server: TestServer): TestServer {
  const client = server.hs.services.federation.client;
  const original = client.request.bind(client);
  client.request = (async (req: Parameters<typeof original>[0]) => {
    const res = await original(req);
    if (req.signed !== false) assertSpecShaped(req.method, req.path, 200, res);
    return res;
  }) as typeof client.request;
  return server;
}

export async function eventually<T>(probe: () => Promise<T | undefined | false>, what: string, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const enc = encodeURIComponent;

export async function sync(server: TestServer, user: TestUser, since?: string): Promise<any> {
  const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/sync?timeout=0${since ? `&since=${enc(since)}` : ''}`, { token: user.accessToken });
  if (res.status !== 200) throw new Error(`sync failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export async function membershipOf(server: TestServer, user: TestUser, roomId: string, target: string): Promise<string | undefined> {
  const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(target)}`, { token: user.accessToken, skipSpecCheck: true });
  return res.status === 200 ? res.body.membership : undefined;
}

export async function send(server: TestServer, user: TestUser, roomId: string, body: string): Promise<string> {
  const res = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, {
    token: user.accessToken,
    body: { msgtype: 'm.text', body },
  });
  if (res.status !== 200) throw new Error(`send failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.event_id;
}

/** Message bodies visible to `user` through /messages, oldest first (following `end` tokens). */
export async function messageBodies(server: TestServer, user: TestUser, roomId: string, pageSize = 100): Promise<string[]> {
  const out: string[] = [];
  let from: string | undefined;
  for (let i = 0; i < 50; i++) {
    const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=${pageSize}${from ? `&from=${enc(from)}` : ''}`, {
      token: user.accessToken,
    });
    if (res.status !== 200) return out.reverse();
    for (const e of res.body.chunk) if (e.type === 'm.room.message') out.push(e.content.body);
    if (!res.body.end || res.body.chunk.length === 0) break;
    from = res.body.end;
  }
  return out.reverse();
}

export async function joinedMembers(server: TestServer, user: TestUser, roomId: string): Promise<string[]> {
  const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`, { token: user.accessToken });
  return res.status === 200 ? Object.keys(res.body.joined).sort() : [];
}

export const api = (server: TestServer, user: TestUser, method: string, path: string, body?: unknown) =>
  request(server.baseUrl, method, `/_matrix/client/v3${path}`, { token: user.accessToken, ...(body !== undefined ? { body } : {}) });

/** The common two-server set-up: A (localhost:<port>) with alice, B (127.0.0.1:<port>) with bob. */
export async function startPair(dialect: Dialect): Promise<{ fleet: Fleet; A: TestServer; B: TestServer; alice: TestUser; bob: TestUser }> {
  const fleet = await startFleet(dialect, ['localhost', '127.0.0.1']);
  const [A, B] = fleet.servers as [TestServer, TestServer];
  return { fleet, A, B, alice: await registerUser(A.baseUrl, 'alice'), bob: await registerUser(B.baseUrl, 'bob') };
}
