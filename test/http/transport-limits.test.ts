import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { idleConnection, pump } from '../helpers/rawHttp.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// Finding 4 of issue 11: a request body is read only after its token is checked, and uploads go to disk
// as they arrive with max_upload_size enforced on the way. Answers that come while most of the body is
// still unsent prove the server neither waited for nor buffered it.

const MAX_UPLOAD = 1024 * 1024;
const BIG = 20 * 1024 * 1024;

function portOf(server: TestServer): number {
  return Number(new URL(server.baseUrl).port);
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(20);
}

describe.each(testDialects())('upload bodies are read after authentication, to disk (%s)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let mediaDir: string;

  beforeAll(async () => {
    server = await startHomeserver({ dialect, config: { max_upload_size: MAX_UPLOAD } });
    alice = await registerUser(server.baseUrl, 'alice');
    mediaDir = join(server.dir, 'media');
  });
  afterAll(async () => {
    await server?.close();
  });

  const uploadHead = (path: string, length: number | 'chunked', token?: string) =>
    [
      `${path.startsWith('PUT ') ? path : `POST ${path}`} HTTP/1.1`,
      'Host: localhost',
      'Content-Type: application/octet-stream',
      length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`,
      ...(token ? [`Authorization: Bearer ${token}`] : []),
    ].join('\r\n');

  it.each([
    ['POST /_matrix/media/v3/upload', undefined, 'M_MISSING_TOKEN'],
    ['POST /_matrix/media/r0/upload', 'not-a-token', 'M_UNKNOWN_TOKEN'],
    ['PUT /_matrix/media/v3/upload/localhost/AAAAAAAAAAAAAAAAAAAAAAAA', 'not-a-token', 'M_UNKNOWN_TOKEN'],
    ['POST /_matrix/client/v3/user/@alice:localhost/filter', undefined, 'M_MISSING_TOKEN'],
  ])('answers %s without a valid token with 401 before the body is sent', async (target, token, errcode) => {
    const [method, path] = target.split(' ') as [string, string];
    const head = uploadHead(method === 'PUT' ? target : path, BIG, token);
    const out = await pump({ port: portOf(server), head, bodyLength: BIG });
    expect(out.status).toBe(401);
    expect(out.body.errcode).toBe(errcode);
    expect(out.sent).toBeLessThan(out.total);
  });

  it('answers an upload whose Content-Length exceeds max_upload_size with 413 before the body is sent', async () => {
    const out = await pump({ port: portOf(server), head: uploadHead('/_matrix/media/v3/upload', BIG, alice.accessToken), bodyLength: BIG });
    expect(out.status).toBe(413);
    expect(out.body.errcode).toBe('M_TOO_LARGE');
    expect(out.sent).toBeLessThan(out.total);
    expect(filesUnder(mediaDir)).toEqual([]);
  });

  it('stops a chunked upload with 413 once the streamed bytes exceed max_upload_size, leaving no file', async () => {
    // Chunked framing: each write is 64 chunks of 1000 bytes, so no Content-Length tells the size ahead.
    const bodyChunk = Buffer.from(`3e8\r\n${'x'.repeat(1000)}\r\n`.repeat(64));
    const head = uploadHead('/_matrix/media/v3/upload', 'chunked', alice.accessToken);
    const out = await pump({ port: portOf(server), head, bodyChunk, bodyLength: bodyChunk.length * 320 });
    expect(out.status).toBe(413);
    expect(out.body.errcode).toBe('M_TOO_LARGE');
    expect(out.sent).toBeLessThan(out.total);
    await until(() => filesUnder(mediaDir).length === 0);
  });

  it('writes an upload to disk while it arrives and removes it when the client goes away', async () => {
    const before = filesUnder(mediaDir).length;
    const socket = await idleConnection(portOf(server));
    socket.write(`${uploadHead('/_matrix/media/v3/upload', MAX_UPLOAD, alice.accessToken)}\r\n\r\n`);
    socket.write(Buffer.alloc(MAX_UPLOAD / 2));
    const tmp = join(mediaDir, 'tmp');
    // Half the body is on disk before the rest is sent: it is not held in memory until complete.
    await until(() => filesUnder(tmp).some((f) => statSync(f).size === MAX_UPLOAD / 2));
    socket.destroy();
    await until(() => filesUnder(tmp).length === 0);
    expect(filesUnder(mediaDir).length).toBe(before);

    const ok = await request(server.baseUrl, 'POST', '/_matrix/media/v3/upload', { token: alice.accessToken, rawBody: Buffer.alloc(MAX_UPLOAD, 7) });
    expect(ok.status).toBe(200);
    expect(filesUnder(tmp)).toEqual([]);
  });

  it.each([
    ['a bad token', 401, 'not-a-token', MAX_UPLOAD],
    ['a Content-Length above max_upload_size', 413, 'alice', BIG],
    ['a valid token and size', 100, 'alice', MAX_UPLOAD],
  ])('answers Expect: 100-continue with %s by %i, before any body is sent', async (_what, status, who, length) => {
    const token = who === 'alice' ? alice.accessToken : who;
    const head = `${uploadHead('/_matrix/media/v3/upload', length, token)}\r\nExpect: 100-continue`;
    const out = await pump({ port: portOf(server), head });
    expect(out.status).toBe(status);
  });

  it('stores a streamed upload of exactly max_upload_size, on both upload paths', async () => {
    const bytes = Buffer.alloc(MAX_UPLOAD, 0x5a);
    const direct = await request(server.baseUrl, 'POST', '/_matrix/media/v3/upload', { token: alice.accessToken, rawBody: bytes });
    expect(direct.status).toBe(200);
    const created = await request(server.baseUrl, 'POST', '/_matrix/media/v1/create', { token: alice.accessToken });
    const id = String(created.body.content_uri).split('/').pop()!;
    const put = await request(server.baseUrl, 'PUT', `/_matrix/media/v3/upload/localhost/${id}`, { token: alice.accessToken, rawBody: bytes });
    expect(put.status).toBe(200);
    for (const uri of [direct.body.content_uri as string, created.body.content_uri as string]) {
      const res = await fetch(`${server.baseUrl}/_matrix/client/v1/media/download/localhost/${uri.split('/').pop()}`, {
        headers: { authorization: `Bearer ${alice.accessToken}` },
      });
      expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    }
    expect(filesUnder(join(mediaDir, 'tmp'))).toEqual([]);
  });

  it('tells a keep-alive client that an early answer closes the connection, so its next request goes on a new one', async () => {
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    const call = (method: string, path: string, headers: Record<string, string>, body?: Buffer) =>
      new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: portOf(server), method, path, headers, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      const refused = await call('PUT', '/_matrix/client/v3/rooms/!a:localhost/send/m.room.message/1', { authorization: 'Bearer nope', 'content-type': 'application/json' }, Buffer.alloc(300 * 1024, 0x20));
      expect(refused).toEqual({ status: 401, connection: 'close' });
      const next = await call('GET', '/_matrix/client/versions', {});
      expect(next.status).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it('answers an upload whose body does not match its Content-Encoding with 400, and inflates one that does', async () => {
    const headers = { 'content-encoding': 'gzip', 'content-type': 'application/octet-stream' };
    for (const rawBody of [Buffer.from('this is not gzip'), Buffer.alloc(0), gzipSync(Buffer.from('cut')).subarray(0, 12)]) {
      const bad = await request(server.baseUrl, 'POST', '/_matrix/media/v3/upload', { token: alice.accessToken, rawBody, headers });
      expect(bad.status).toBe(400);
      expect(bad.body.errcode).toBe('M_UNKNOWN');
    }
    const bytes = Buffer.from('inflated on the way in');
    const good = await request(server.baseUrl, 'POST', '/_matrix/media/v3/upload', { token: alice.accessToken, rawBody: gzipSync(bytes), headers });
    expect(good.status).toBe(200);
    const res = await fetch(`${server.baseUrl}/_matrix/client/v1/media/download/localhost/${String(good.body.content_uri).split('/').pop()}`, {
      headers: { authorization: `Bearer ${alice.accessToken}` },
    });
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    expect(filesUnder(join(mediaDir, 'tmp'))).toEqual([]);
  });
});

// Finding 5 of issue 11: a client that sends its request slowly is cut off after http_timeouts, and one
// address cannot hold more than max_connections_per_address connections; long-poll /sync is unaffected.

describe('request timeouts', () => {
  let server: TestServer;
  let alice: TestUser;

  beforeAll(async () => {
    server = await startHomeserver({
      config: { max_upload_size: MAX_UPLOAD, http_timeouts: { headers_ms: 500, request_ms: 1000, keep_alive_ms: 5000 } },
    });
    alice = await registerUser(server.baseUrl, 'alice');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('closes connections that send their headers a byte at a time once headers_ms has passed', async () => {
    // Each head takes ~8 s to send at this pace; twenty of them at once, as a slow-loris attack would.
    const head = ['GET /_matrix/client/versions HTTP/1.1', 'Host: localhost', `X-Padding: ${'a'.repeat(300)}`].join('\r\n');
    const outs = await Promise.all(Array.from({ length: 20 }, () => pump({ port: portOf(server), head, chunkSize: 1, delayMs: 25 })));
    for (const out of outs) {
      expect(out.status === undefined || out.status === 408).toBe(true);
      expect(out.sent).toBeLessThan(out.total);
    }
    expect((await request(server.baseUrl, 'GET', '/_matrix/client/versions')).status).toBe(200);
  });

  it('cuts an upload whose body arrives slower than request_ms allows, leaving no file', async () => {
    const head = [
      'POST /_matrix/media/v3/upload HTTP/1.1',
      'Host: localhost',
      `Content-Length: ${100 * 1024}`,
      `Authorization: Bearer ${alice.accessToken}`,
    ].join('\r\n');
    const out = await pump({ port: portOf(server), head, bodyLength: 100 * 1024, chunkSize: 1024, delayMs: 50 });
    expect(out.status === undefined || out.status === 408).toBe(true);
    expect(out.sent).toBeLessThan(out.total);
    await until(() => filesUnder(join(server.dir, 'media')).length === 0);
  });

  it('still answers a long-poll /sync after its timeout, longer than headers_ms and request_ms', async () => {
    const first = await request(server.baseUrl, 'GET', '/_matrix/client/v3/sync?timeout=0', { token: alice.accessToken });
    expect(first.status).toBe(200);
    const polled = await request(server.baseUrl, 'GET', `/_matrix/client/v3/sync?timeout=2500&since=${encodeURIComponent(first.body.next_batch)}`, {
      token: alice.accessToken,
    });
    expect(polled.status).toBe(200);
    expect(typeof polled.body.next_batch).toBe('string');
  });

  it('wakes a long-poll /sync (timeout=30000) with a message sent after request_ms has passed', async () => {
    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    const first = await request(server.baseUrl, 'GET', '/_matrix/client/v3/sync?timeout=0', { token: alice.accessToken });
    const poll = request(server.baseUrl, 'GET', `/_matrix/client/v3/sync?timeout=30000&since=${encodeURIComponent(first.body.next_batch)}`, {
      token: alice.accessToken,
    });
    await sleep(1500);
    const sent = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(room.body.room_id)}/send/m.room.message/t1`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body: 'still there?' },
    });
    const polled = await poll;
    expect(polled.status).toBe(200);
    const events = polled.body.rooms.join[room.body.room_id].timeline.events as { event_id: string }[];
    expect(events.map((e) => e.event_id)).toContain(sent.body.event_id);
  });
});

describe('connections per address', () => {
  let server: TestServer;

  beforeAll(async () => {
    // Loopback is exempt by default (a local proxy); here it plays the internet.
    server = await startHomeserver({ config: { max_connections_per_address: 3, max_connections_per_address_exempt: [] } });
  });
  afterAll(async () => {
    await server?.close();
  });

  const versions = (localAddress: string) =>
    pump({ port: portOf(server), head: 'GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost', localAddress });

  it('refuses connections beyond max_connections_per_address from one address while another address is served', async () => {
    const held = await Promise.all([1, 2, 3].map(() => idleConnection(portOf(server), '127.0.0.1')));
    const refused = await versions('127.0.0.1');
    expect(refused.status).toBeUndefined();
    const other = await versions('127.0.0.2');
    expect(other.status).toBe(200);

    held[0]!.destroy();
    // Once the server has seen that close, 127.0.0.1 has a free slot again.
    let again = await versions('127.0.0.1');
    while (again.status === undefined) again = await versions('127.0.0.1');
    expect(again.status).toBe(200);
    for (const s of held) s.destroy();
  });
});
