import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDuration, parseSize } from '../config/schema.js';
import { MatrixError, notFound } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import * as repo from '../storage/repositories/media.js';
import type { MediaRow, ThumbnailRow, UploadedContent } from '../storage/repositories/media.js';
import * as remoteRepo from '../storage/repositories/remoteMedia.js';
import type { RemoteMediaRow } from '../storage/repositories/remoteMedia.js';
import { normaliseContentType } from './headers.js';
import { RemoteMediaCache, type RemoteMediaClient } from './remoteMedia.js';
import { MEDIA_ID_RE, MediaStore, type OpenedFile, type StoredFile } from './store.js';
import {
  ImageTooLarge,
  NotAnImage,
  Thumbnailer,
  baseContentType,
  canThumbnail,
  selectThumbnailSize,
  type ImageInfo,
  type ThumbnailMethod,
} from './thumbnailer.js';

// The content repository (spec: Client-Server API, "Content repository"): uploads (direct and the
// v1.7 create-then-upload flow), downloads, thumbnails, and retention. Other servers' media is fetched
// over federation into a local cache (./remoteMedia.ts) and thumbnailed here from the cached original.

export type MediaDeps = Pick<ServiceDeps, 'config' | 'serverName' | 'logger' | 'db' | 'clock'>;

export interface Download {
  file: OpenedFile;
  contentType: string;
  filename: string | undefined;
}

export interface ThumbnailReply {
  file: OpenedFile;
  contentType: string;
}

export interface ThumbnailRequest {
  width: number;
  height: number;
  method: ThumbnailMethod;
  animated: boolean | undefined;
  timeoutMs: number | undefined;
  /** false: answer only from local media and the cache (legacy `allow_remote`). */
  allowRemote?: boolean;
  /** A legacy unauthenticated request: media stored under enable_authenticated_media is not served. */
  unauthenticated?: boolean;
}

/** What a thumbnail is made from: local media, or a cached remote item (by its filesystem id). */
interface ThumbnailSource {
  id: string;
  contentType: string | undefined;
  contentPath: string;
  table: repo.ThumbnailTable;
  thumbnailPath(key: repo.ThumbnailKey): string;
}

/** Longest a download waits for an async upload to arrive (the spec asks servers to cap timeout_ms). */
const MAX_WAIT_MS = 120_000;
const DEFAULT_WAIT_MS = 20_000;
/** How often a waiting download re-reads the row (another process may have received the bytes). */
const WAIT_POLL_MS = 1000;
/** last_access_ts is rewritten at most this often per item, so downloads stay reads. */
const ACCESS_GRANULARITY_MS = 10 * 60_000;
const RETENTION_INTERVAL_MS = 60 * 60_000;
const PURGE_BATCH = 500;
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function newMediaId(): string {
  let id = '';
  for (let i = 0; i < 24; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return id;
}

function normaliseFilename(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length > 255) throw new MatrixError('M_INVALID_PARAM', 'filename is too long');
  return value;
}

export class MediaService {
  readonly maxUploadSize: number;
  /** Also where the HTTP layer spools upload bodies (its tmp directory). */
  readonly store: MediaStore;
  private readonly thumbnailer: Thumbnailer;
  private readonly uploaded = new EventEmitter();
  private readonly closing = new AbortController();
  private readonly inFlight = new Map<string, Promise<ThumbnailRow | 'original'>>();
  private readonly remote: RemoteMediaCache;
  private retentionTimer: NodeJS.Timeout | undefined;
  private purging: Promise<unknown> | undefined;

  constructor(
    private readonly deps: MediaDeps,
    client?: RemoteMediaClient,
  ) {
    this.maxUploadSize = parseSize(deps.config.max_upload_size);
    this.store = new MediaStore(deps.config.media_store_path);
    this.remote = new RemoteMediaCache({ ...deps, store: this.store, client, maxUploadSize: this.maxUploadSize });
    this.thumbnailer = new Thumbnailer(parseSize(deps.config.max_image_pixels));
    this.uploaded.setMaxListeners(0);
  }

  /** Starts the hourly retention sweep (expired async ids; old media when media_retention says so). */
  start(): void {
    if (this.retentionTimer) return;
    this.retentionTimer = setInterval(() => {
      if (this.purging) return;
      this.purging = this.purgeExpired()
        .catch((err: unknown) => this.deps.logger.error({ err }, 'media retention sweep failed'))
        .finally(() => (this.purging = undefined));
    }, RETENTION_INTERVAL_MS);
    this.retentionTimer.unref();
  }

  /** Stops the sweep and wakes every waiting download; waits for a sweep in progress to finish. */
  async close(): Promise<void> {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.retentionTimer = undefined;
    this.closing.abort();
    await this.purging;
    await Promise.allSettled([...this.inFlight.values()]);
    await this.remote.idle();
  }

  /** enable_authenticated_media: what new media is marked with, and whether the mark is enforced. */
  private get authenticatedOnly(): boolean {
    return this.deps.config.enable_authenticated_media;
  }

  /** Whether a legacy unauthenticated request may be served this item (Synapse: 404 when not). */
  private servesUnauthenticated(row: { authenticated: boolean }): boolean {
    return !this.authenticatedOnly || !row.authenticated;
  }

  private isLocal(serverName: string): boolean {
    return serverName === this.deps.serverName;
  }

  mxc(mediaId: string): string {
    return `mxc://${this.deps.serverName}/${mediaId}`;
  }

  /** POST /upload: stores an uploaded temporary file (from store.writeStream) under a new id. */
  async upload(userId: string, written: StoredFile, contentType: string | undefined, filename: string | undefined): Promise<string> {
    const content = { contentType: normaliseContentType(contentType), filename: normaliseFilename(filename) };
    const mediaId = newMediaId();
    const final = this.store.contentPath(mediaId);
    try {
      await this.store.commit(written.tempPath, final);
      const stored = { ...content, size: written.size, sha256: written.sha256 };
      await repo.insertUploadedMedia(this.deps.db.knex, mediaId, userId, stored, this.deps.clock.now(), this.authenticatedOnly);
    } catch (err) {
      await this.store.discard(written.tempPath);
      await this.store.remove(mediaId);
      throw err;
    }
    return this.mxc(mediaId);
  }

  /** POST /_matrix/media/v1/create: reserves an id its creator fills in later. */
  async create(userId: string): Promise<{ content_uri: string; unused_expires_at: number }> {
    const now = this.deps.clock.now();
    const pending = await repo.countPendingMedia(this.deps.db.knex, userId, now);
    if (pending >= this.deps.config.max_pending_media_uploads) {
      throw new MatrixError('M_LIMIT_EXCEEDED', 'Too many pending media uploads', 429, { retry_after_ms: 60_000 });
    }
    const mediaId = newMediaId();
    const unusedExpiresAt = now + parseDuration(this.deps.config.unused_expiration_time);
    await repo.insertPendingMedia(this.deps.db.knex, mediaId, userId, now, unusedExpiresAt, this.authenticatedOnly);
    return { content_uri: this.mxc(mediaId), unused_expires_at: unusedExpiresAt };
  }

  /** PUT /upload/{serverName}/{mediaId}: the bytes for an id made by create, by its creator, once. */
  async uploadTo(
    userId: string,
    serverName: string,
    mediaId: string,
    written: StoredFile,
    contentType: string | undefined,
    filename: string | undefined,
  ): Promise<void> {
    if (serverName !== this.deps.serverName || !MEDIA_ID_RE.test(mediaId)) throw notFound('Unknown media ID');
    const content = { contentType: normaliseContentType(contentType), filename: normaliseFilename(filename) };
    const row = await repo.getMedia(this.deps.db.knex, mediaId);
    this.checkUploadable(row, userId, this.deps.clock.now());
    const full: UploadedContent = { ...content, size: written.size, sha256: written.sha256 };
    try {
      // The conditional update and the rename share one transaction: of two racing uploads one wins and
      // the other sees 409; no reader ever finds a row marked uploaded without its file.
      await this.deps.db.knex.transaction(async (trx) => {
        const now = this.deps.clock.now();
        const current = await repo.getMedia(trx, mediaId);
        this.checkUploadable(current, userId, now);
        if (!(await repo.completePendingMedia(trx, mediaId, full, now))) throw this.cannotOverwrite();
        await this.store.commit(written.tempPath, this.store.contentPath(mediaId));
      });
    } finally {
      await this.store.discard(written.tempPath);
    }
    this.uploaded.emit(mediaId);
  }

  private checkUploadable(row: MediaRow | undefined, userId: string, now: number): void {
    if (!row) throw notFound('Unknown media ID');
    if (row.userId !== userId) throw new MatrixError('M_FORBIDDEN', 'You did not create this media ID');
    if (row.uploadTs !== undefined) throw this.cannotOverwrite();
    if (row.unusedExpiresAt !== undefined && row.unusedExpiresAt <= now) throw notFound('Media ID has expired');
  }

  private cannotOverwrite(): MatrixError {
    return new MatrixError('M_CANNOT_OVERWRITE_MEDIA', 'Media already uploaded');
  }

  /** The row of uploaded local media, waiting up to timeout_ms for an async upload to arrive. */
  private async uploadedRow(serverName: string, mediaId: string, timeoutMs: number | undefined, unauthenticated: boolean): Promise<MediaRow> {
    if (serverName !== this.deps.serverName || !MEDIA_ID_RE.test(mediaId)) throw notFound('Media not found');
    const deadline = Date.now() + Math.min(Math.max(timeoutMs ?? DEFAULT_WAIT_MS, 0), MAX_WAIT_MS);
    for (;;) {
      const row = await repo.getMedia(this.deps.db.knex, mediaId);
      // Quarantined by an admin: answered as if it did not exist, as Synapse.
      if (!row || row.quarantinedBy !== undefined) throw notFound('Media not found');
      if (unauthenticated && !this.servesUnauthenticated(row)) throw notFound('Media not found');
      if (row.uploadTs !== undefined) return row;
      if (row.unusedExpiresAt !== undefined && row.unusedExpiresAt <= this.deps.clock.now()) throw notFound('Media not found');
      const remaining = deadline - Date.now();
      if (remaining <= 0 || this.closing.signal.aborted) {
        throw new MatrixError('M_NOT_YET_UPLOADED', 'The media has not been uploaded yet');
      }
      await this.waitForUpload(mediaId, Math.min(remaining, WAIT_POLL_MS));
    }
  }

  private async waitForUpload(mediaId: string, ms: number): Promise<void> {
    const wake = new AbortController();
    const onUpload = () => wake.abort();
    const onClose = () => wake.abort();
    this.uploaded.once(mediaId, onUpload);
    this.closing.signal.addEventListener('abort', onClose, { once: true });
    try {
      await sleep(ms, undefined, { signal: wake.signal });
    } catch {
      // woken early: by the upload, or by close()
    } finally {
      this.uploaded.off(mediaId, onUpload);
      this.closing.signal.removeEventListener('abort', onClose);
    }
  }

  private async touch(row: MediaRow): Promise<void> {
    const now = this.deps.clock.now();
    if (row.lastAccessTs !== undefined && now - row.lastAccessTs < ACCESS_GRANULARITY_MS) return;
    await repo.touchMedia(this.deps.db.knex, row.mediaId, now);
  }

  /** `unauthenticated`: a legacy /_matrix/media download, which media under enable_authenticated_media never answers. */
  async download(serverName: string, mediaId: string, timeoutMs?: number, allowRemote = true, unauthenticated = false): Promise<Download> {
    if (!this.isLocal(serverName)) return this.remoteDownload(serverName, mediaId, timeoutMs, allowRemote, unauthenticated);
    const row = await this.uploadedRow(serverName, mediaId, timeoutMs, unauthenticated);
    const file = await this.store.open(this.store.contentPath(mediaId));
    if (!file) {
      this.deps.logger.warn({ mediaId }, 'media row without its file');
      throw notFound('Media not found');
    }
    await this.touch(row);
    return { file, contentType: row.contentType ?? 'application/octet-stream', filename: row.filename };
  }

  private async remoteDownload(
    origin: string,
    mediaId: string,
    timeoutMs: number | undefined,
    allowRemote: boolean,
    unauthenticated: boolean,
  ): Promise<Download> {
    for (let attempt = 0; ; attempt++) {
      const row = await this.remoteRow(origin, mediaId, { allowRemote, timeoutMs }, unauthenticated);
      const file = await this.store.open(this.store.remoteContentPath(row.filesystemId));
      if (file) return { file, contentType: row.contentType, filename: row.filename };
      // The cache row outlived its file (deleted by hand, or a crash): fetch it again, once.
      this.deps.logger.warn({ origin, mediaId }, 'cached remote media without its file');
      await this.remote.forget(row);
      if (attempt > 0) throw notFound('Media not found');
    }
  }

  /**
   * The cached row of remote media, fetched when needed. A legacy unauthenticated request under
   * enable_authenticated_media is answered only from the cache and only for media cached while it was off
   * (as Synapse: such a request never makes us fetch).
   */
  private async remoteRow(
    origin: string,
    mediaId: string,
    opts: { allowRemote: boolean; timeoutMs: number | undefined },
    unauthenticated: boolean,
  ): Promise<RemoteMediaRow> {
    const gated = unauthenticated && this.authenticatedOnly;
    const row = await this.remote.get(origin, mediaId, { ...opts, allowRemote: opts.allowRemote && !gated, authenticated: this.authenticatedOnly });
    if (row.quarantinedBy !== undefined) throw notFound('Media not found');
    if (unauthenticated && !this.servesUnauthenticated(row)) throw notFound('Media not found');
    return row;
  }

  /** Local media (waiting for an async upload) or cached remote media (fetched when needed), for thumbnailing. */
  private async thumbnailSource(serverName: string, mediaId: string, req: ThumbnailRequest): Promise<ThumbnailSource> {
    const unauthenticated = req.unauthenticated === true;
    if (!this.isLocal(serverName)) {
      const row = await this.remoteRow(serverName, mediaId, { allowRemote: req.allowRemote !== false, timeoutMs: req.timeoutMs }, unauthenticated);
      const fsId = row.filesystemId;
      return {
        id: fsId,
        contentType: row.contentType,
        contentPath: this.store.remoteContentPath(fsId),
        table: 'remote_media_thumbnails',
        thumbnailPath: (k) => this.store.remoteThumbnailPath(fsId, k.width, k.height, k.method, k.animated),
      };
    }
    const row = await this.uploadedRow(serverName, mediaId, req.timeoutMs, unauthenticated);
    await this.touch(row);
    return {
      id: mediaId,
      contentType: row.contentType,
      contentPath: this.store.contentPath(mediaId),
      table: 'media_thumbnails',
      thumbnailPath: (k) => this.store.thumbnailPath(mediaId, k.width, k.height, k.method, k.animated),
    };
  }

  async thumbnail(serverName: string, mediaId: string, req: ThumbnailRequest): Promise<ThumbnailReply> {
    const row = await this.thumbnailSource(serverName, mediaId, req);
    if (!canThumbnail(row.contentType)) {
      throw new MatrixError('M_UNKNOWN', `Cannot generate thumbnails for ${baseContentType(row.contentType)}`, 400);
    }
    const target = selectThumbnailSize(
      { width: req.width, height: req.height, method: req.method },
      this.deps.config.thumbnail_sizes,
      this.deps.config.dynamic_thumbnails,
    );
    const key: repo.ThumbnailKey = { mediaId: row.id, ...target, animated: req.animated === true };

    const cached = await repo.getThumbnail(this.deps.db.knex, key, row.table);
    if (cached) {
      const file = await this.store.open(row.thumbnailPath(key));
      if (file) return { file, contentType: cached.contentType };
    }

    const flightKey = `${row.table}/${row.id}/${key.width}/${key.height}/${key.method}/${key.animated}`;
    let flight = this.inFlight.get(flightKey);
    if (!flight) {
      flight = this.generate(row, key).finally(() => this.inFlight.delete(flightKey));
      this.inFlight.set(flightKey, flight);
    }
    const made = await flight;
    if (made === 'original') {
      const file = await this.store.open(row.contentPath);
      if (!file) throw notFound('Media not found');
      return { file, contentType: baseContentType(row.contentType) };
    }
    const file = await this.store.open(row.thumbnailPath(key));
    if (!file) throw notFound('Media not found');
    return { file, contentType: made.contentType };
  }

  /** Makes and records one thumbnail, or decides the original is small enough to serve as it is. */
  private async generate(row: ThumbnailSource, key: repo.ThumbnailKey): Promise<ThumbnailRow | 'original'> {
    const bytes = await this.store.read(row.contentPath);
    if (!bytes) throw notFound('Media not found');
    let info: ImageInfo;
    try {
      info = await this.thumbnailer.probe(bytes);
    } catch (err) {
      if (err instanceof NotAnImage) throw new MatrixError('M_UNKNOWN', 'Cannot generate a thumbnail for this media', 400);
      throw err;
    }
    // An image already inside the box is its own best thumbnail, provided it is a type clients accept
    // as one and is only animated when animation was asked for.
    const fits = info.width <= key.width && info.height <= key.height;
    const typeOk = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'].includes(baseContentType(row.contentType));
    if (fits && typeOk && (!info.animated || key.animated)) return 'original';

    let thumb;
    try {
      thumb = await this.thumbnailer.generate(bytes, info, key, key.animated);
    } catch (err) {
      if (err instanceof ImageTooLarge) throw new MatrixError('M_TOO_LARGE', 'The image is too large to thumbnail', 413);
      this.deps.logger.warn({ err, mediaId: row.id }, 'thumbnail generation failed');
      throw new MatrixError('M_UNKNOWN', 'Cannot generate a thumbnail for this media', 400);
    }
    const written = await this.store.writeTemp(thumb.data);
    try {
      await this.store.commit(written.tempPath, row.thumbnailPath(key));
    } finally {
      await this.store.discard(written.tempPath);
    }
    const stored: ThumbnailRow = {
      ...key,
      contentType: thumb.contentType,
      actualWidth: thumb.width,
      actualHeight: thumb.height,
      size: thumb.data.length,
      createdTs: this.deps.clock.now(),
    };
    await repo.insertThumbnail(this.deps.db.knex, stored, row.table);
    return stored;
  }

  /**
   * Deletes pending ids whose reservation ran out and, when `media_retention.local_media_lifetime` is
   * set, local media not downloaded for that long. Returns how many items were removed.
   */
  async purgeExpired(now = this.deps.clock.now()): Promise<number> {
    const lifetime = this.deps.config.media_retention.local_media_lifetime;
    const accessedBefore = lifetime === undefined || lifetime === null ? undefined : now - parseDuration(lifetime);
    let total = 0;
    for (;;) {
      const ids = await repo.expiredMediaIds(this.deps.db.knex, { accessedBefore, now, limit: PURGE_BATCH });
      if (ids.length === 0) break;
      await this.deleteLocal(ids);
      total += ids.length;
      if (ids.length < PURGE_BATCH || this.closing.signal.aborted) break;
    }
    total += await this.purgeRemote(now);
    if (total > 0) this.deps.logger.info({ count: total }, 'media retention: deleted media');
    return total;
  }

  /** Deletes local media items, rows first: from then on downloads answer 404, and a file left by a crash is only litter. */
  async deleteLocal(ids: readonly string[]): Promise<void> {
    await this.deps.db.knex.transaction((trx) => repo.deleteMedia(trx, ids));
    for (const id of ids) {
      await this.store.remove(id).catch((err: unknown) => this.deps.logger.warn({ err, mediaId: id }, 'could not delete media file'));
    }
  }

  /** Cached remote media not downloaded for `media_retention.remote_media_lifetime` (kept forever when unset). */
  private async purgeRemote(now: number): Promise<number> {
    const lifetime = this.deps.config.media_retention.remote_media_lifetime;
    if (lifetime === undefined || lifetime === null) return 0;
    return this.purgeRemoteBefore(now - parseDuration(lifetime));
  }

  /** Deletes cached remote media last used before `cutoff` (retention, and the admin API's purge_media_cache). */
  async purgeRemoteBefore(cutoff: number): Promise<number> {
    let total = 0;
    for (;;) {
      const rows = await remoteRepo.staleRemoteMedia(this.deps.db.knex, cutoff, PURGE_BATCH);
      if (rows.length === 0) break;
      await this.deps.db.knex.transaction((trx) => remoteRepo.deleteRemoteMedia(trx, rows));
      for (const row of rows) {
        await this.store.removeRemote(row.filesystemId).catch((err: unknown) => this.deps.logger.warn({ err, origin: row.origin }, 'could not delete cached media file'));
      }
      total += rows.length;
      if (rows.length < PURGE_BATCH || this.closing.signal.aborted) break;
    }
    return total;
  }
}
