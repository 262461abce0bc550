import { createHmac, timingSafeEqual } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import type { HomeserverApi } from '../matrix/homeserverApi.js';

// Media links for IRC users. Homeservers with authenticated media (MSC3916; Skjól's default) serve media
// only to Matrix users with a token, so IRC gets links to the bridge itself: signed for one mxc:// URI (no one
// can walk other media ids through it, and only until it expires), streamed from /_matrix/client/v1/media
// with the bridge's as_token, never more than media_proxy.max_size bytes.

/** Where the proxy is mounted on the bridge's listener (outside the hs_token check). */
export const MEDIA_PROXY_PATH = '/_skjol_irc/media/v1';

const MXC_RE = /^mxc:\/\/([A-Za-z0-9.:[\]-]{1,255})\/([A-Za-z0-9_-]{1,255})$/;
const SERVER_RE = /^[A-Za-z0-9.:[\]-]{1,255}$/;
const MEDIA_ID_RE = /^[A-Za-z0-9_-]{1,255}$/;
/** How long the bridge waits for the homeserver's answer to start. */
const HEADERS_TIMEOUT_MS = 30_000;

export class MediaLinks {
  private readonly base: string;

  /** `ttlSeconds` 0: links never expire. */
  constructor(
    private readonly key: string,
    publicUrl: string,
    private readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    this.base = publicUrl.replace(/\/+$/, '');
  }

  private sign(expires: number, server: string, mediaId: string): Buffer {
    return createHmac('sha256', this.key).update(`${expires}/${server}/${mediaId}`).digest();
  }

  /** The link IRC users get for an mxc:// URI, or undefined when it is not one. */
  link(mxc: string, name: string): string | undefined {
    const m = MXC_RE.exec(mxc);
    if (!m) return undefined;
    const [, server, mediaId] = m as unknown as [string, string, string];
    const expires = this.ttlSeconds > 0 ? Math.floor(this.now() / 1000) + this.ttlSeconds : 0;
    const sig = this.sign(expires, server, mediaId).toString('base64url');
    return `${this.base}${MEDIA_PROXY_PATH}/${expires}/${sig}/${encodeURIComponent(server)}/${mediaId}/${encodeURIComponent(name)}`;
  }

  /** Whether a link's parts carry our signature and have not expired. */
  verify(expires: string, sig: string, server: string, mediaId: string): boolean {
    if (!/^\d{1,12}$/.test(expires) || !SERVER_RE.test(server) || !MEDIA_ID_RE.test(mediaId)) return false;
    const exp = Number(expires);
    if (exp !== 0 && exp * 1000 < this.now()) return false;
    const given = Buffer.from(sig, 'base64url');
    const expected = this.sign(exp, server, mediaId);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}

function plain(res: Response, status: number, text: string): void {
  res.status(status).type('text/plain').send(text);
}

/** Stops a download that grows past `max` bytes (the homeserver did not say its length up front). */
function capped(max: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      done(seen > max ? new Error('file larger than media_proxy.max_size') : null, chunk);
    },
  });
}

/** GET {MEDIA_PROXY_PATH}/:expires/:sig/:server/:mediaId{/:name}: the bytes, fetched with the as_token. */
export function mediaProxyHandler(api: HomeserverApi, links: MediaLinks, maxBytes: number, logger: { warn(obj: object, msg: string): void }) {
  return async (req: Request, res: Response): Promise<void> => {
    const p = req.params as Record<string, string | undefined>;
    const [expires, sig, server, mediaId] = [p.expires ?? '', p.sig ?? '', p.server ?? '', p.mediaId ?? ''];
    if (!links.verify(expires, sig, server, mediaId)) return plain(res, 404, 'Not found');
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), HEADERS_TIMEOUT_MS);
    res.on('close', () => abort.abort());
    // The name from the link goes to the homeserver, which puts it in Content-Disposition (inline only when safe).
    const named = p.name ? `/${encodeURIComponent(p.name)}` : '';
    let upstream: globalThis.Response;
    try {
      upstream = await api.fetchRaw(`/_matrix/client/v1/media/download/${encodeURIComponent(server)}/${encodeURIComponent(mediaId)}${named}`, abort.signal);
    } catch (err) {
      logger.warn({ err: (err as Error).message, server }, 'media proxy: homeserver unreachable');
      return plain(res, 502, 'The homeserver could not be reached');
    } finally {
      clearTimeout(timer);
    }
    if (!upstream.ok || !upstream.body) {
      await upstream.body?.cancel();
      return plain(res, upstream.status === 404 ? 404 : 502, upstream.status === 404 ? 'Not found' : 'The homeserver could not serve this file');
    }
    const headers: Record<string, string> = {
      'Content-Type': upstream.headers.get('content-type') ?? 'application/octet-stream',
      'Content-Disposition': upstream.headers.get('content-disposition') ?? 'attachment',
      'Content-Security-Policy': "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cache-Control': 'private, max-age=3600',
    };
    const length = upstream.headers.get('content-length');
    if (length && Number(length) > maxBytes) {
      await upstream.body.cancel();
      return plain(res, 413, 'This file is too large to be shared with IRC');
    }
    if (length) headers['Content-Length'] = length;
    res.status(200).set(headers);
    try {
      await pipeline(Readable.fromWeb(upstream.body as import('node:stream/web').ReadableStream<Uint8Array>), capped(maxBytes), res);
    } catch (err) {
      // The IRC user went away, or the homeserver stopped sending: nothing left to answer.
      if (!res.destroyed) res.destroy(err as Error);
    }
  };
}
