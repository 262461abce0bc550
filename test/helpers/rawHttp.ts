import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

// HTTP over a bare socket, for what fetch cannot show: when the server answers (or hangs up) relative to
// how much of the request has been sent.

export interface PumpOutcome {
  /** Undefined when the server closed the connection without an answer. */
  status: number | undefined;
  body: any;
  /** Request bytes (head and body) written before the answer or the close arrived. */
  sent: number;
  total: number;
}

export interface PumpOptions {
  port: number;
  /** Request line and headers, without the blank line that ends them. */
  head: string;
  /** Body bytes sent after the head (zeros), unless the server answers first. */
  bodyLength?: number;
  /** Bytes per write; the head is written in the same steps. */
  chunkSize?: number;
  /** What each body write sends (default: chunkSize zeros); the body is this repeated up to bodyLength. */
  bodyChunk?: Buffer;
  /** Pause between writes; 0 yields to the event loop only. */
  delayMs?: number;
  localAddress?: string;
}

function parseResponse(buf: Buffer): { status: number; body: any } | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = buf.subarray(0, end).toString('latin1');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
  const body = buf.subarray(end + 4);
  if (body.length < length) return undefined;
  const text = body.subarray(0, length).toString('utf8');
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status, body: parsed };
}

/** Sends a request step by step and stops as soon as the server answers or closes the connection. */
export async function pump(options: PumpOptions): Promise<PumpOutcome> {
  const chunkSize = options.chunkSize ?? 64 * 1024;
  const head = Buffer.from(`${options.head}\r\n\r\n`, 'latin1');
  const bodyLength = options.bodyLength ?? 0;
  const total = head.length + bodyLength;
  const socket: Socket = connect({ port: options.port, host: '127.0.0.1', localAddress: options.localAddress });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));

  let received = Buffer.alloc(0);
  let answer: { status: number; body: any } | undefined;
  let closed = false;
  const done = new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      answer ??= parseResponse(received);
      if (answer) resolve();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      resolve();
    });
  });

  let sent = 0;
  const bodyChunk = options.bodyChunk ?? Buffer.alloc(chunkSize);
  while (sent < total && !answer && !closed) {
    const chunk = sent < head.length ? head.subarray(sent, sent + chunkSize) : bodyChunk.subarray(0, Math.min(bodyChunk.length, total - sent));
    const flushed = socket.write(chunk);
    sent += chunk.length;
    if (!flushed) await Promise.race([new Promise((r) => socket.once('drain', r)), done]);
    if (options.delayMs) await sleep(options.delayMs);
    else await new Promise((r) => setImmediate(r));
  }
  await done;
  socket.destroy();
  return { status: answer?.status, body: answer?.body, sent, total };
}

/** Opens a connection and keeps it idle; resolves with the socket once connected. */
export async function idleConnection(port: number, localAddress?: string): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return socket;
}

/** Resolves once the server has closed the socket. */
export function closedByServer(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', () => resolve());
  });
}
