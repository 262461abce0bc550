import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { PushDelivery, type DeliveryOptions, type PushTarget } from '../../src/push/delivery.js';
import { OutboundPolicy } from '../../src/net/outboundPolicy.js';

// The delivery queue against a real HTTP endpoint: ordering, bounds, giving up, rejected pushkeys, close.

type Handler = (body: any, res: ServerResponse) => void;

async function gateway(handler: Handler): Promise<{ url: string; server: Server; bodies: any[] }> {
  const bodies: any[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      bodies.push(body);
      handler(body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/_matrix/push/v1/notify`, server, bodies };
}

const ok = (res: ServerResponse, rejected: string[] = []) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ rejected }));
};
const fail = (res: ServerResponse) => {
  res.writeHead(502);
  res.end('bad gateway');
};

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('push delivery queue', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });
  const make = (options: Partial<DeliveryOptions>, onRejected: (t: PushTarget) => Promise<void> = async () => {}) => {
    const d = new PushDelivery({ logger: pino({ level: 'silent' }), onRejected, outbound: new OutboundPolicy({ whitelist: ['127.0.0.0/8'] }) }, options);
    cleanup.push(() => d.close());
    return d;
  };
  const serve = async (handler: Handler) => {
    const g = await gateway(handler);
    cleanup.push(() => {
      g.server.closeAllConnections();
      return new Promise<void>((r) => g.server.close(() => r()));
    });
    return g;
  };

  it('delivers in order, one request at a time, and keeps the newest when the queue overflows', async () => {
    const held: ServerResponse[] = [];
    const g = await serve((_b, res) => held.push(res));
    const d = make({ maxQueuePerPusher: 3 });
    const target = { userId: '@a:x', appId: 'app', pushkey: 'k', url: g.url };
    for (let i = 0; i < 10; i++) d.enqueue(target, { n: i });
    await until(() => held.length === 1);
    // Only the first is on the wire; the queue kept it and the three newest.
    expect(d.pending()).toBe(3);
    for (let i = 0; i < 3; i++) {
      await until(() => held.length > 0);
      // Never two requests at once for one pusher.
      expect(held).toHaveLength(1);
      ok(held.shift()!);
    }
    await d.idle();
    expect(g.bodies.map((b) => b.n)).toEqual([0, 8, 9]);
  });

  it('gives up on a notification after maxAttempts and moves on', async () => {
    const g = await serve((body, res) => (body.n === 0 ? fail(res) : ok(res)));
    const d = make({ retryBaseMs: 10, maxAttempts: 3 });
    const target = { userId: '@a:x', appId: 'app', pushkey: 'k', url: g.url };
    d.enqueue(target, { n: 0 });
    d.enqueue(target, { n: 1 });
    await d.idle();
    expect(g.bodies.map((b) => b.n)).toEqual([0, 0, 0, 1]);
  });

  it('retries an unreachable gateway and stops all timers on close', async () => {
    const g = await serve((_b, res) => fail(res));
    const d = make({ retryBaseMs: 50 });
    d.enqueue({ userId: '@a:x', appId: 'app', pushkey: 'k', url: g.url }, { n: 0 });
    await until(() => g.bodies.length >= 2);
    d.close();
    const seen = g.bodies.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(g.bodies.length).toBe(seen);
    expect(d.pending()).toBe(0);
    await d.idle();
    // A closed queue takes no more work.
    d.enqueue({ userId: '@a:x', appId: 'app', pushkey: 'k', url: g.url }, { n: 1 });
    expect(d.pending()).toBe(0);
  });

  it('drops the queue and reports a pushkey the gateway rejects', async () => {
    const g = await serve((_b, res) => ok(res, ['k']));
    const rejected: PushTarget[] = [];
    const d = make({}, async (t) => {
      rejected.push(t);
    });
    const target = { userId: '@a:x', appId: 'app', pushkey: 'k', url: g.url };
    d.enqueue(target, { n: 0 });
    d.enqueue(target, { n: 1 });
    await d.idle();
    expect(g.bodies).toHaveLength(1);
    expect(rejected).toEqual([target]);
  });
});
