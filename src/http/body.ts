import type { Transform } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import express, { type Request, type Response } from 'express';
import { MatrixError } from '../errors.js';
import type { BodyStore, StreamedBody } from './route.js';

// Request bodies are read only after the request is authenticated (src/http/mount.ts), and never beyond
// their route's limit: a declared Content-Length above it is refused before one byte is read.

function tooLarge(): MatrixError {
  return new MatrixError('M_TOO_LARGE', 'Request body too large', 413);
}

function declaredLength(req: Request): number | undefined {
  const value = req.headers['content-length'];
  return value === undefined || !/^\d+$/.test(value) ? undefined : Number(value);
}

function encodingOf(req: Request): string {
  return (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
}

/** How long a connection answered before its body arrived may go on sending before it is cut. */
const LINGER_MS = 5_000;

/**
 * For an answer given before the body was read (401, 413 …): close the connection once it is written
 * instead of reading the rest. Closing at once would make the kernel reset the connection over the
 * unread bytes, and the client could lose the answer; so half-close, drop what still arrives for a
 * moment (as nginx's lingering close does), then cut.
 */
export function closeWhenAnswered(req: Request, res: Response): void {
  if (req.complete || req.readableEnded) return;
  // Say so, or a keep-alive client sends its next request into a connection about to close. Node then
  // destroys the socket once the answer is written, which resets it over the unread body: half-close instead.
  if (!res.headersSent) res.setHeader('Connection', 'close');
  const socket = req.socket;
  socket.destroySoon = () => socket.end();
  res.once('finish', () => {
    const cut = setTimeout(() => socket.destroy(), LINGER_MS).unref();
    socket.once('close', () => clearTimeout(cut));
    req.once('end', () => socket.destroy());
    req.resume();
    socket.end();
  });
}

// A client that asked "Expect: 100-continue" sends its body only now that the request is accepted so far
// (the listeners hand such requests to the app instead of answering 100 at once).
function continueIfExpected(req: Request, res: Response): void {
  if (/^100-continue$/i.test(req.headers.expect ?? '') && !res.headersSent) res.writeContinue();
}

/** Buffers a (small, JSON-sized) body in memory, inflating gzip/deflate/br as body-parser does. */
export async function readBody(req: Request, res: Response, limit: number): Promise<Buffer> {
  const length = declaredLength(req);
  if (length !== undefined && length > limit && encodingOf(req) === 'identity') throw tooLarge();
  continueIfExpected(req, res);
  const parser = express.raw({ type: () => true, limit });
  await new Promise<void>((resolve, reject) => parser(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

// Counts the bytes as they pass and stops at the first chunk beyond the limit.
async function* capped(source: AsyncIterable<Buffer>, limit: number): AsyncGenerator<Buffer> {
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > limit) throw tooLarge();
    yield chunk;
  }
}

function aborted(): Error {
  return Object.assign(new Error('request aborted'), { type: 'request.aborted' });
}

// pipe(), not pipeline(): a failure of the decoder must not destroy the request, whose socket answers.
function decode(req: Request, decoder: Transform): AsyncIterable<Buffer> {
  // Bad input can fail the decoder before anyone iterates it: keep that error for the reader, never uncaught.
  let failure: unknown;
  decoder.on('error', (err) => (failure ??= err));
  req.pipe(decoder);
  req.once('close', () => {
    if (!req.complete) decoder.destroy(aborted());
  });
  return (async function* () {
    if (!decoder.destroyed) yield* decoder;
    if (failure !== undefined) throw failure;
  })();
}

/**
 * Spools a body to a temporary file in `store`, hashing as it goes; memory stays at one chunk whatever
 * the size. The request is not destroyed on failure, so a 413 can still be answered on its socket.
 */
export async function streamBody(req: Request, res: Response, limit: number, store: BodyStore): Promise<StreamedBody> {
  const encoding = encodingOf(req);
  const length = declaredLength(req);
  if (length !== undefined && length > limit && encoding === 'identity') throw tooLarge();
  let source: AsyncIterable<Buffer>;
  if (encoding === 'identity') source = req.iterator({ destroyOnReturn: false });
  else if (encoding === 'gzip' || encoding === 'x-gzip') source = decode(req, createGunzip());
  else if (encoding === 'deflate') source = decode(req, createInflate());
  else throw new MatrixError('M_UNKNOWN', `Unsupported Content-Encoding: ${encoding}`, 415);
  continueIfExpected(req, res);
  try {
    return await store.writeStream(capped(source, limit));
  } catch (err) {
    if (err instanceof MatrixError) throw err;
    // A request read to its end is destroyed too (autoDestroy): only one cut short was aborted by the client.
    if ((req.destroyed && !req.complete) || (err as { type?: string }).type === 'request.aborted') throw aborted();
    if ((err as { code?: string }).code?.startsWith('Z_')) throw new MatrixError('M_UNKNOWN', 'Body does not match its Content-Encoding', 400);
    throw err;
  }
}
