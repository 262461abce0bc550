import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, get, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ChildServer } from '../helpers/childServer.js';
import { request } from '../helpers/http.js';
import { registerUser } from '../helpers/users.js';

// SIGTERM as systemd or docker stop sends it: the server must end by shutdown_timeout even with clients
// holding connections open, after answering what it was doing.

function body(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}

/** Resolves when the server closes this socket (or it errors). */
function closed(socket: Socket): Promise<void> {
  return new Promise((r) => {
    if (socket.destroyed) r();
    socket.once('close', () => r());
  });
}

describe('shutting down on SIGTERM (skjol serve as a process)', () => {
  let dir: string;
  let server: ChildServer | undefined;

  afterEach(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the running long-poll and upload, closes idle keep-alive connections, and exits 0 well within the default 10 s', async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-shutdown-'));
    server = await ChildServer.start(dir);
    const alice = await registerUser(server.baseUrl, 'alice');
    const since: string = (await request(server.baseUrl, 'GET', '/_matrix/client/v3/sync?timeout=0', { token: alice.accessToken })).body.next_batch;

    // An idle keep-alive connection, as a browser or reverse proxy leaves open.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const idleSocket = await new Promise<Socket>((resolve, reject) => {
      const req = get(`${server!.baseUrl}/_matrix/client/versions`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(req.socket as Socket));
      });
      req.on('error', reject);
    });
    const idleClosed = closed(idleSocket);

    // A long-poll that would otherwise wait a minute.
    const longPoll = new Promise<{ status: number; body: string }>((resolve, reject) => {
      get(`${server!.baseUrl}/_matrix/client/v3/sync?timeout=60000&since=${encodeURIComponent(since)}`, { headers: { authorization: `Bearer ${alice.accessToken}` } }, (res) => {
        void body(res).then((text) => resolve({ status: res.statusCode!, body: text }), reject);
      }).on('error', reject);
    });
    // An upload whose body is half sent when the signal comes.
    const payload = Buffer.alloc(64 * 1024, 7);
    const upload = httpRequest(`${server.baseUrl}/_matrix/media/v3/upload?filename=a.bin`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.accessToken}`, 'content-type': 'application/octet-stream', 'content-length': payload.length },
    });
    const uploaded = new Promise<{ status: number; body: string }>((resolve, reject) => {
      upload.on('response', (res) => void body(res).then((text) => resolve({ status: res.statusCode!, body: text }), reject));
      upload.on('error', reject);
    });
    upload.write(payload.subarray(0, 32 * 1024));
    await new Promise((r) => setTimeout(r, 500));

    const exit = server.signal('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    upload.end(payload.subarray(32 * 1024));

    const poll = await longPoll;
    expect(poll.status).toBe(200);
    expect(JSON.parse(poll.body).next_batch).toEqual(expect.any(String));
    const up = await uploaded;
    expect(up.status).toBe(200);
    expect(JSON.parse(up.body).content_uri).toMatch(/^mxc:\/\/localhost\//);
    await idleClosed;
    const { code, ms } = await exit;
    expect(code).toBe(0);
    expect(ms).toBeLessThan(10_000);
    expect(server.log()).toMatch(/"msg":"shutting down"/);
    expect(server.log()).toMatch(/"msg":"shut down"/);
    agent.destroy();
  }, 180_000);

  it('cuts a request that never completes at the configured shutdown_timeout and still exits', async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-shutdown-'));
    server = await ChildServer.start(dir, { shutdown_timeout: '2s' });
    const alice = await registerUser(server.baseUrl, 'alice');
    // A client that announces a body and stops sending half-way, holding its request open.
    const stalled = connect(server.port, '127.0.0.1');
    await new Promise((r) => stalled.once('connect', r));
    stalled.on('error', () => undefined);
    stalled.write(
      `POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${alice.accessToken}\r\n` +
        'Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(1000),
    );
    const stalledClosed = closed(stalled);
    await new Promise((r) => setTimeout(r, 300));

    const { code, ms } = await server.signal('SIGTERM');
    await stalledClosed;
    expect(code).not.toBeNull();
    // Cut by the 2 s deadline, not left to the request's own (10 minute) timeout; the margin absorbs a busy machine.
    expect(ms).toBeLessThan(10_000);
    expect(server.log()).toMatch(/"timeout_ms":2000,"msg":"shutting down"/);
  }, 180_000);
});
