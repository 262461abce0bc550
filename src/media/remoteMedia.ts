import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { MatrixError, notFound } from '../errors.js';
import { FederationRequestError, type FederationClient } from '../federation/client.js';
import { isValidServerName } from '../federation/serverName.js';
import type { Db } from '../storage/database.js';
import * as repo from '../storage/repositories/remoteMedia.js';
import type { RemoteMediaRow } from '../storage/repositories/remoteMedia.js';
import { filenameOf, normaliseContentType } from './headers.js';
import { MultipartError, MultipartTooLarge, parseMediaMultipart } from './multipart.js';
import { MEDIA_ID_RE, type MediaStore, type StoredFile } from './store.js';

// Fetching other servers' media (spec: Server-Server API, "Content Repository"): the authenticated
// federation endpoint first, the legacy unauthenticated one when the remote does not know it (as Synapse
// does), the bytes streamed into the local cache, one fetch per item however many clients ask at once.

export type RemoteMediaClient = Pick<FederationClient, 'requestStream'>;

export interface RemoteMediaDeps {
  db: { knex: Db };
  clock: { now(): number };
  logger: Logger;
  store: MediaStore;
  client: RemoteMediaClient | undefined;
  maxUploadSize: number;
}

/** The multipart framing around the media part is small; this bounds the whole response. */
const MULTIPART_OVERHEAD_BYTES = 256 * 1024;
const DEFAULT_TIMEOUT_MS = 20_000;
const MAX_TIMEOUT_MS = 120_000;
const ACCESS_GRANULARITY_MS = 10 * 60_000;

const enc = encodeURIComponent;

interface Fetched {
  written: StoredFile;
  contentType: string | undefined;
  disposition: string | undefined;
}

export class RemoteMediaCache {
  private readonly inFlight = new Map<string, Promise<RemoteMediaRow>>();

  constructor(private readonly deps: RemoteMediaDeps) {}

  /** The cached row of mxc://origin/mediaId, fetched first when needed (and allowed). */
  /** `authenticated`: what a newly fetched row is marked with (enable_authenticated_media at fetch time). */
  async get(origin: string, mediaId: string, opts: { allowRemote: boolean; timeoutMs: number | undefined; authenticated: boolean }): Promise<RemoteMediaRow> {
    if (!isValidServerName(origin) || !MEDIA_ID_RE.test(mediaId)) throw notFound('Media not found');
    const cached = await repo.getRemoteMedia(this.deps.db.knex, origin, mediaId);
    if (cached) {
      await this.touch(cached);
      return cached;
    }
    if (!opts.allowRemote || !this.deps.client) throw notFound('Media not found');
    const key = `${origin}/${mediaId}`;
    let flight = this.inFlight.get(key);
    if (!flight) {
      flight = this.fetch(origin, mediaId, opts.timeoutMs, opts.authenticated).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, flight);
    }
    return flight;
  }

  /** Drops a row whose file went missing, so the next request fetches it again. */
  async forget(row: RemoteMediaRow): Promise<void> {
    await repo.deleteRemoteMedia(this.deps.db.knex, [row]);
    await this.deps.store.removeRemote(row.filesystemId);
  }

  /** Every in-flight fetch, settled (for shutdown). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.inFlight.values()]);
  }

  private async touch(row: RemoteMediaRow): Promise<void> {
    const now = this.deps.clock.now();
    if (now - row.lastAccessTs < ACCESS_GRANULARITY_MS) return;
    await repo.touchRemoteMedia(this.deps.db.knex, row.origin, row.mediaId, now);
  }

  private async fetch(origin: string, mediaId: string, timeoutMs: number | undefined, authenticated: boolean): Promise<RemoteMediaRow> {
    const wait = Math.min(Math.max(timeoutMs ?? DEFAULT_TIMEOUT_MS, 0), MAX_TIMEOUT_MS);
    let fetched: Fetched;
    try {
      try {
        fetched = await this.viaFederation(origin, mediaId, wait);
      } catch (err) {
        if (!(err instanceof FederationRequestError) || !unrecognised(err)) throw err;
        fetched = await this.viaLegacy(origin, mediaId, wait);
      }
    } catch (err) {
      throw this.clientError(origin, mediaId, err);
    }
    const { written } = fetched;
    const filesystemId = randomBytes(18).toString('base64url');
    const now = this.deps.clock.now();
    const row: RemoteMediaRow = {
      origin,
      mediaId,
      filesystemId,
      contentType: normaliseContentType(fetched.contentType),
      filename: filenameOf(fetched.disposition),
      size: written.size,
      sha256: written.sha256,
      createdTs: now,
      lastAccessTs: now,
      authenticated,
    };
    try {
      await this.deps.store.commit(written.tempPath, this.deps.store.remoteContentPath(filesystemId));
      if (await repo.insertRemoteMedia(this.deps.db.knex, row)) return row;
    } catch (err) {
      await this.deps.store.discard(written.tempPath);
      await this.deps.store.removeRemote(filesystemId);
      throw err;
    }
    // Another process cached it meanwhile: keep its copy.
    await this.deps.store.removeRemote(filesystemId);
    const theirs = await repo.getRemoteMedia(this.deps.db.knex, origin, mediaId);
    if (!theirs) throw notFound('Media not found');
    return theirs;
  }

  /** GET /_matrix/federation/v1/media/download/{mediaId}: multipart, metadata then bytes. */
  private async viaFederation(origin: string, mediaId: string, timeoutMs: number): Promise<Fetched> {
    const res = await this.deps.client!.requestStream({
      destination: origin,
      method: 'GET',
      path: `/_matrix/federation/v1/media/download/${enc(mediaId)}`,
      query: { timeout_ms: timeoutMs },
      accept: 'multipart/mixed',
      timeoutMs: Math.max(timeoutMs, DEFAULT_TIMEOUT_MS),
      maxResponseBytes: this.deps.maxUploadSize + MULTIPART_OVERHEAD_BYTES,
    });
    // The sink's file is known here even when the framing after it turns out to be broken.
    let written: StoredFile | undefined;
    try {
      const contentType = header(res.headers['content-type']);
      const parsed = await parseMediaMultipart(res.body, contentType, this.deps.maxUploadSize, async (body) => {
        written = await this.deps.store.writeStream(body);
        return written;
      });
      // A redirect would have us fetch an arbitrary URL; Skjól and Synapse serve bytes.
      if (parsed.location !== undefined || !written) throw new MultipartError('media part is a redirect, which is not followed');
      return { written, contentType: parsed.headers['content-type'], disposition: parsed.headers['content-disposition'] };
    } catch (err) {
      res.abort();
      if (written) await this.deps.store.discard(written.tempPath);
      throw err;
    }
  }

  /** GET /_matrix/media/v3/download/{serverName}/{mediaId}?allow_remote=false: the bytes themselves. */
  private async viaLegacy(origin: string, mediaId: string, timeoutMs: number): Promise<Fetched> {
    const res = await this.deps.client!.requestStream({
      destination: origin,
      method: 'GET',
      path: `/_matrix/media/v3/download/${enc(origin)}/${enc(mediaId)}`,
      query: { allow_remote: 'false', timeout_ms: timeoutMs },
      accept: '*/*',
      timeoutMs: Math.max(timeoutMs, DEFAULT_TIMEOUT_MS),
      maxResponseBytes: this.deps.maxUploadSize,
    });
    try {
      const written = await this.deps.store.writeStream(res.body);
      return { written, contentType: header(res.headers['content-type']), disposition: header(res.headers['content-disposition']) };
    } catch (err) {
      res.abort();
      throw err;
    }
  }

  /** What a client sees when a fetch fails (Synapse's statuses), logged with the reason. */
  private clientError(origin: string, mediaId: string, err: unknown): MatrixError {
    const log = (reason: string) => this.deps.logger.info({ origin, mediaId, reason }, 'remote media fetch failed');
    if (err instanceof FederationRequestError) {
      log(err.detail);
      if (err.failure === 'denied') return err;
      if (err.failure === 'http' && err.remoteStatus === 404) return notFound('Media not found');
      if (err.failure === 'timeout') return new MatrixError('M_UNKNOWN', `Timed out fetching media from ${origin}`, 504);
      if (err.detail === 'response too large') return tooLarge();
      return new MatrixError('M_UNKNOWN', `Failed to fetch media from ${origin}`, 502);
    }
    if (err instanceof MultipartTooLarge) {
      log(err.message);
      return tooLarge();
    }
    if (err instanceof MultipartError) {
      log(err.message);
      return new MatrixError('M_UNKNOWN', `Failed to fetch media from ${origin}`, 502);
    }
    if (err instanceof MatrixError) return err;
    this.deps.logger.warn({ err, origin, mediaId }, 'remote media fetch failed');
    return new MatrixError('M_UNKNOWN', `Failed to fetch media from ${origin}`, 502);
  }
}

/** The remote predates the federation media endpoints (Synapse's test: 404 M_UNRECOGNIZED, or 405). */
function unrecognised(err: FederationRequestError): boolean {
  if (err.failure !== 'http') return false;
  return err.remoteStatus === 405 || ((err.remoteStatus === 404 || err.remoteStatus === 400) && err.remoteErrcode === 'M_UNRECOGNIZED');
}

function tooLarge(): MatrixError {
  return new MatrixError('M_TOO_LARGE', 'The remote media is larger than this server accepts', 502);
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
