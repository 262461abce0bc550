import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

// The multipart/mixed body of the federation media endpoints (spec: Server-Server API, "Content
// Repository"; RFC 2046 §5.1): a JSON metadata part, then the media part (bytes, or a Location header).
// Parsing streams the media part to a sink and never holds more than one chunk plus a delimiter.

/** Limits on the parts that are read whole; the media part is capped by the caller. */
const MAX_PREAMBLE_BYTES = 4 * 1024;
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_METADATA_BYTES = 64 * 1024;

/** The body is not a well-formed media multipart. */
export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

/** The media part is larger than allowed. */
export class MultipartTooLarge extends MultipartError {
  constructor() {
    super('media part exceeds the size limit');
    this.name = 'MultipartTooLarge';
  }
}

export type PartHeaders = Record<string, string>;

export interface ParsedMediaResponse<T> {
  metadata: Record<string, unknown>;
  headers: PartHeaders;
  /** What the sink returned for the media bytes; undefined when the media part is a redirect. */
  stored: T | undefined;
  /** The media part's Location header, when the remote answered with a redirect instead of bytes. */
  location: string | undefined;
}

/** The boundary parameter of a `multipart/mixed` Content-Type; throws when absent or malformed. */
export function boundaryOf(contentType: string | undefined): string {
  const value = contentType ?? '';
  const [type, ...params] = value.split(';');
  if (type?.trim().toLowerCase() !== 'multipart/mixed') throw new MultipartError('not multipart/mixed');
  for (const param of params) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'boundary') continue;
    let b = param.slice(eq + 1).trim();
    if (b.startsWith('"') && b.endsWith('"') && b.length >= 2) b = b.slice(1, -1);
    // RFC 2046: 1 to 70 characters from a restricted set, not ending in a space.
    if (!/^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/.test(b)) throw new MultipartError('malformed boundary');
    return b;
  }
  throw new MultipartError('missing boundary');
}

/** Pulls bytes from an async source on demand, keeping only what has not been consumed. */
class Reader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.it.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, next.value]) : next.value;
    return true;
  }

  /** The bytes before `delim` (which is consumed too), at most `max` of them. */
  async readUntil(delim: Buffer, max: number, what: string): Promise<Buffer> {
    let from = 0;
    for (;;) {
      const at = this.buf.indexOf(delim, from);
      if (at >= 0) {
        if (at > max) throw new MultipartError(`${what} is too long`);
        const out = this.buf.subarray(0, at);
        this.buf = this.buf.subarray(at + delim.length);
        return out;
      }
      if (this.buf.length > max + delim.length) throw new MultipartError(`${what} is too long`);
      from = Math.max(0, this.buf.length - delim.length + 1);
      if (!(await this.fill())) throw new MultipartError(`body ended inside ${what}`);
    }
  }

  /** Yields the bytes before `delim` as they arrive (consuming the delimiter); throws past `max` bytes. */
  async *streamUntil(delim: Buffer, max: number): AsyncGenerator<Buffer> {
    let total = 0;
    for (;;) {
      const at = this.buf.indexOf(delim);
      if (at >= 0) {
        total += at;
        if (total > max) throw new MultipartTooLarge();
        if (at > 0) yield this.buf.subarray(0, at);
        this.buf = this.buf.subarray(at + delim.length);
        return;
      }
      // Everything but a possible delimiter prefix at the end is media.
      const safe = this.buf.length - delim.length + 1;
      if (safe > 0) {
        total += safe;
        if (total > max) throw new MultipartTooLarge();
        const out = this.buf.subarray(0, safe);
        this.buf = this.buf.subarray(safe);
        yield out;
      }
      if (!(await this.fill())) throw new MultipartError('body ended inside the media part');
    }
  }

  /** The next `n` bytes, or fewer when the body ends. */
  async peek(n: number): Promise<Buffer> {
    while (this.buf.length < n && (await this.fill()));
    return this.buf.subarray(0, n);
  }

  skip(n: number): void {
    this.buf = this.buf.subarray(n);
  }

  /** Stops the source (a no-op once it ended). */
  async close(): Promise<void> {
    if (!this.done) await this.it.return?.();
  }
}

function parseHeaders(block: Buffer): PartHeaders {
  const headers: PartHeaders = Object.create(null) as PartHeaders;
  const text = block.toString('latin1');
  if (text === '') return headers;
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MultipartError('malformed part header');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** Reads the header block that follows a delimiter line (possibly empty). */
async function readPartHeaders(reader: Reader): Promise<PartHeaders> {
  if ((await reader.peek(2)).equals(Buffer.from('\r\n'))) {
    reader.skip(2);
    return parseHeaders(Buffer.alloc(0));
  }
  return parseHeaders(await reader.readUntil(Buffer.from('\r\n\r\n'), MAX_HEADER_BYTES, 'part headers'));
}

/**
 * Parses a federation media response: the JSON metadata, then the media part, whose bytes go to `sink`
 * (at most `maxMediaBytes`; MultipartTooLarge past that). A Location part is returned without calling the sink.
 */
export async function parseMediaMultipart<T>(
  source: AsyncIterable<Buffer>,
  contentType: string | undefined,
  maxMediaBytes: number,
  sink: (body: AsyncIterable<Buffer>) => Promise<T>,
): Promise<ParsedMediaResponse<T>> {
  const boundary = boundaryOf(contentType);
  const reader = new Reader(source);
  try {
    const dashBoundary = Buffer.from(`--${boundary}`);
    const delimiter = Buffer.from(`\r\n--${boundary}`);
    // The first boundary may open the body or follow a preamble.
    const start = await reader.peek(dashBoundary.length);
    if (start.equals(dashBoundary)) reader.skip(dashBoundary.length);
    else await reader.readUntil(delimiter, MAX_PREAMBLE_BYTES, 'preamble');
    await expectLineEnd(reader);

    const metadataHeaders = await readPartHeaders(reader);
    const metaType = metadataHeaders['content-type'];
    if (metaType !== undefined && !/^application\/json\s*(;|$)/i.test(metaType)) throw new MultipartError('metadata part is not JSON');
    const metadataBytes = await reader.readUntil(delimiter, MAX_METADATA_BYTES, 'metadata part');
    let metadata: unknown;
    try {
      metadata = JSON.parse(metadataBytes.toString('utf8'));
    } catch {
      throw new MultipartError('metadata part is not JSON');
    }
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw new MultipartError('metadata is not an object');
    if ((await reader.peek(2)).equals(Buffer.from('--'))) throw new MultipartError('no media part');
    await expectLineEnd(reader);

    const headers = await readPartHeaders(reader);
    const location = headers.location;
    let stored: T | undefined;
    if (location !== undefined) {
      await drain(reader.streamUntil(delimiter, MAX_METADATA_BYTES));
    } else {
      stored = await sink(reader.streamUntil(delimiter, maxMediaBytes));
    }
    // Only the close delimiter may follow: a third part is not part of the format.
    if (!(await reader.peek(2)).equals(Buffer.from('--'))) throw new MultipartError('unexpected part after the media part');
    return { metadata: metadata as Record<string, unknown>, headers, stored, location };
  } finally {
    await reader.close();
  }
}

/** After a boundary: optional transport padding (spaces, tabs), then CRLF. */
async function expectLineEnd(reader: Reader): Promise<void> {
  const line = await reader.readUntil(Buffer.from('\r\n'), 64, 'boundary line');
  if (!/^[ \t]*$/.test(line.toString('latin1'))) throw new MultipartError('malformed boundary line');
}

async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of body);
}

export interface MultipartBody {
  contentType: string;
  contentLength: number;
  body: Readable;
}

/** The response of our federation media endpoints: `{}` metadata, then the bytes with their headers. */
export function mediaMultipart(mediaHeaders: Record<string, string>, media: Buffer | NodeJS.ReadableStream, mediaSize: number): MultipartBody {
  const boundary = randomBytes(16).toString('hex');
  const head = Buffer.from(
    `--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${boundary}\r\n` +
      Object.entries(mediaHeaders)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('') +
      '\r\n',
    'utf8',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  async function* parts(): AsyncGenerator<Buffer> {
    yield head;
    if (Buffer.isBuffer(media)) yield media;
    else for await (const chunk of media as AsyncIterable<Buffer>) yield chunk;
    yield tail;
  }
  return {
    contentType: `multipart/mixed; boundary=${boundary}`,
    contentLength: head.length + mediaSize + tail.length,
    body: Readable.from(parts(), { objectMode: false }),
  };
}
