import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa, issueCert } from '../federation/tls.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const enc = encodeURIComponent;
const NOTIFY = '/_matrix/push/v1/notify';

/** A listening socket that only counts who connects: what a port scan through the homeserver would touch. */
async function tcpCounter(host = '127.0.0.1'): Promise<{ port: number; connections(): number; close(): Promise<void> }> {
  let count = 0;
  const server: NetServer = createNetServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => count,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A push gateway answering 200 {rejected: []}; `received` counts notify requests. */
async function gateway(host = '127.0.0.1'): Promise<{ port: number; received(): number; close(): Promise<void> }> {
  let received = 0;
  const server: HttpServer = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"rejected":[]}');
    });
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as AddressInfo).port,
    received: () => received,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Answers every request with 200 and a JSON body that never ends; counts what it managed to write. */
function endlessBody(total: number): { handler: (req: unknown, res: import('node:http').ServerResponse) => void; written(): number; closed(): boolean } {
  let written = 0;
  let closed = false;
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  return {
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"pad":"');
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end('"}');
      };
      res.on('close', () => (closed = true));
      pump();
    },
    written: () => written,
    closed: () => closed,
  };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Makes alice's message notify bob, and resolves once every pusher of bob has been tried and given up on. */
async function notifyAndSettle(server: TestServer, alice: TestUser, bob: TestUser, pushers: number): Promise<void> {
  const delivery = server.hs.services.push.pushers.delivery;
  // Observe (not replace) enqueue, to know when the notification reached every pusher's queue.
  let enqueued = 0;
  const enqueue = delivery.enqueue.bind(delivery);
  delivery.enqueue = (target, body) => {
    enqueued++;
    enqueue(target, body);
  };
  const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'public_chat' } });
  expect((await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(room.body.room_id)}`, { token: bob.accessToken, body: {} })).status).toBe(200);
  const sent = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(room.body.room_id)}/send/m.room.message/t1`, {
    token: alice.accessToken,
    body: { msgtype: 'm.text', body: 'hello bob' },
  });
  expect(sent.status).toBe(200);
  await until(() => enqueued >= pushers, 'the notification to be queued for every pusher');
  await delivery.idle();
}

const pusher = (pushkey: string, url: string) => ({
  pushkey,
  kind: 'http',
  app_id: 'org.example.app',
  app_display_name: 'Example',
  device_display_name: 'Phone',
  lang: 'en',
  data: { url },
});

describe.each(testDialects())('outbound address ranges on %s', (dialect) => {
  describe('with the default ip_range_blacklist', () => {
    let server: TestServer;
    let alice: TestUser;
    let bob: TestUser;
    let counter: Awaited<ReturnType<typeof tcpCounter>>;
    let gw: Awaited<ReturnType<typeof gateway>>;

    beforeAll(async () => {
      counter = await tcpCounter();
      gw = await gateway();
      // No whitelist: the defaults a real deployment gets.
      server = await startHomeserver({ dialect, config: { ip_range_whitelist: [] } });
      Object.assign(server.hs.services.push.pushers.delivery.options, { retryBaseMs: 10, maxAttempts: 2, requestTimeoutMs: 1000 });
      alice = await registerUser(server.baseUrl, 'alice');
      bob = await registerUser(server.baseUrl, 'bob');
    });
    afterAll(async () => {
      await server?.close();
      await counter?.close();
      await gw?.close();
    });

    it('never delivers to a push gateway on a loopback, link-local or private address, by IP or by name', async () => {
      const urls = [
        `http://127.0.0.1:${gw.port}${NOTIFY}`,
        `http://localhost:${gw.port}${NOTIFY}`,
        `http://[::ffff:127.0.0.1]:${gw.port}${NOTIFY}`,
        `http://169.254.169.254${NOTIFY}`,
        `http://10.0.0.1${NOTIFY}`,
      ];
      for (const [i, url] of urls.entries()) {
        const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/pushers/set', { token: bob.accessToken, body: pusher(`k${i}`, url) });
        expect(res.status).toBe(200);
      }
      await notifyAndSettle(server, alice, bob, urls.length);
      expect(gw.received()).toBe(0);
    });

    it('answers a key query for a loopback server without connecting to it', async () => {
      const before = counter.connections();
      for (const name of [`127.0.0.1:${counter.port}`, `localhost:${counter.port}`, `[::ffff:127.0.0.1]:${counter.port}`]) {
        const res = await request(server.baseUrl, 'GET', `/_matrix/key/v2/query/${enc(name)}`);
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ server_keys: [] });
      }
      const batch = await request(server.baseUrl, 'POST', '/_matrix/key/v2/query', {
        body: { server_keys: { [`127.0.0.2:${counter.port}`]: {}, [`127.1:${counter.port}`]: {} } },
      });
      expect(batch.status).toBe(200);
      expect(batch.body).toEqual({ server_keys: [] });
      expect(counter.connections() - before).toBe(0);
    });

    it('refuses /join through a loopback server name without connecting to it', async () => {
      const before = counter.connections();
      const viaName = await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(`!room:localhost:${counter.port}`)}?server_name=${enc(`127.0.0.1:${counter.port}`)}`, {
        token: alice.accessToken,
        body: {},
      });
      expect(viaName.status).toBe(502);
      expect(viaName.body.errcode).toBe('M_UNKNOWN');
      const viaAlias = await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(`#room:127.0.0.1:${counter.port}`)}`, { token: alice.accessToken, body: {} });
      expect(viaAlias.status).toBe(502);
      expect(viaAlias.body.errcode).toBe('M_UNKNOWN');
      expect(counter.connections() - before).toBe(0);
    });

    it('does not fetch the keys of an X-Matrix origin on a loopback address', async () => {
      // A port of its own: key fetches are throttled per server name.
      const origin = await tcpCounter();
      try {
        const signed = await request(server.baseUrl, 'GET', `/_matrix/federation/v1/query/profile?user_id=${enc(alice.userId)}`, {
          headers: { authorization: `X-Matrix origin="127.0.0.1:${origin.port}",destination="${server.serverName}",key="ed25519:a",sig="c2lnbmF0dXJl"` },
          skipSpecCheck: true,
        });
        expect(signed.status).toBe(401);
        expect(signed.body.errcode).toBe('M_UNAUTHORIZED');
        expect(origin.connections()).toBe(0);
      } finally {
        await origin.close();
      }
    });
  });

  describe('with ip_range_whitelist', () => {
    let server: TestServer;
    let alice: TestUser;
    let bob: TestUser;
    let allowed: Awaited<ReturnType<typeof gateway>>;
    let other: Awaited<ReturnType<typeof gateway>>;

    beforeAll(async () => {
      allowed = await gateway('127.0.0.1');
      other = await gateway('127.0.0.2');
      server = await startHomeserver({ dialect, config: { ip_range_whitelist: ['127.0.0.1/32'] } });
      Object.assign(server.hs.services.push.pushers.delivery.options, { retryBaseMs: 10, maxAttempts: 2, requestTimeoutMs: 1000 });
      alice = await registerUser(server.baseUrl, 'alice');
      bob = await registerUser(server.baseUrl, 'bob');
    });
    afterAll(async () => {
      await server?.close();
      await allowed?.close();
      await other?.close();
    });

    it('lets the named range through and keeps the rest of the blacklist', async () => {
      for (const [i, url] of [`http://127.0.0.1:${allowed.port}${NOTIFY}`, `http://127.0.0.2:${other.port}${NOTIFY}`].entries()) {
        expect((await request(server.baseUrl, 'POST', '/_matrix/client/v3/pushers/set', { token: bob.accessToken, body: pusher(`w${i}`, url) })).status).toBe(200);
      }
      await notifyAndSettle(server, alice, bob, 2);
      expect(allowed.received()).toBe(1);
      expect(other.received()).toBe(0);
    });
  });

  describe('response size caps', () => {
    let dir: string;
    let server: TestServer;
    let alice: TestUser;
    let bob: TestUser;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'skjol-outbound-'));
      const ca = createTestCa(dir);
      server = await startHomeserver({ dialect, config: { federation_custom_ca_list: [ca.caPath] } });
      Object.assign(server.hs.services.push.pushers.delivery.options, { retryBaseMs: 10, maxAttempts: 1 });
      alice = await registerUser(server.baseUrl, 'alice');
      bob = await registerUser(server.baseUrl, 'bob');
    });
    afterAll(async () => {
      await server?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('cuts off a remote server that answers with an endless body and answers a spec error', async () => {
      const remote = endlessBody(1024 * 1024 * 1024);
      const cert = issueCert(dir, 'big', { caPath: join(dir, 'ca.pem'), keyPath: join(dir, 'ca.key') });
      const https = createHttpsServer({ key: readFileSync(cert.privateKeyPath), cert: readFileSync(cert.certificatePath) }, remote.handler);
      await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
      try {
        const port = (https.address() as AddressInfo).port;
        const res = await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(`#big:127.0.0.1:${port}`)}`, { token: alice.accessToken, body: {} });
        expect(res.status).toBe(502);
        expect(res.body.errcode).toBe('M_UNKNOWN');
        await until(remote.closed, 'the remote connection to be dropped');
        expect(remote.written()).toBeLessThan(64 * 1024 * 1024);
      } finally {
        https.closeAllConnections();
        await new Promise<void>((r) => https.close(() => r()));
      }
    });

    it('cuts off a push gateway that answers with an endless body', async () => {
      const gw = endlessBody(256 * 1024 * 1024);
      const http = createHttpServer(gw.handler);
      await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
      try {
        const port = (http.address() as AddressInfo).port;
        const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/pushers/set', { token: bob.accessToken, body: pusher('big', `http://127.0.0.1:${port}${NOTIFY}`) });
        expect(res.status).toBe(200);
        await notifyAndSettle(server, alice, bob, 1);
        await until(gw.closed, 'the gateway connection to be dropped');
        expect(gw.written()).toBeLessThan(16 * 1024 * 1024);
      } finally {
        http.closeAllConnections();
        await new Promise<void>((r) => http.close(() => r()));
      }
    });
  });
});
