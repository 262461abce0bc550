import type { Db } from '../database.js';

// Content repository metadata: `media` (one row per local mxc:// URI) and `media_thumbnails` (one row per
// generated thumbnail). The bytes live on disk (src/media/store.ts). Repositories never open transactions;
// MediaService owns the unit of work.

export interface MediaRow {
  mediaId: string;
  userId: string;
  contentType: string | undefined;
  filename: string | undefined;
  size: number | undefined;
  sha256: string | undefined;
  createdTs: number;
  /** When the bytes arrived; undefined for an async (v1/create) id still waiting for them. */
  uploadTs: number | undefined;
  unusedExpiresAt: number | undefined;
  lastAccessTs: number | undefined;
  /** Stored while enable_authenticated_media was on: never served on the legacy unauthenticated paths. */
  authenticated: boolean;
  /** The admin who quarantined it (Synapse admin API): never served again. */
  quarantinedBy: string | undefined;
}

export interface ThumbnailKey {
  mediaId: string;
  width: number;
  height: number;
  method: 'crop' | 'scale';
  animated: boolean;
}

export interface ThumbnailRow extends ThumbnailKey {
  contentType: string;
  actualWidth: number;
  actualHeight: number;
  size: number;
  createdTs: number;
}

interface MediaDbRow {
  media_id: string;
  user_id: string;
  content_type: string | null;
  filename: string | null;
  size: number | string | null;
  sha256: string | null;
  created_ts: number | string;
  upload_ts: number | string | null;
  unused_expires_at: number | string | null;
  last_access_ts: number | string | null;
  authenticated: boolean | number | null;
  quarantined_by?: string | null;
}

interface ThumbnailDbRow {
  media_id: string;
  width: number;
  height: number;
  method: string;
  animated: boolean | number;
  content_type: string;
  actual_width: number;
  actual_height: number;
  size: number | string;
  created_ts: number | string;
}

const optNum = (v: number | string | null): number | undefined => (v === null ? undefined : Number(v));

const toMedia = (r: MediaDbRow): MediaRow => ({
  mediaId: r.media_id,
  userId: r.user_id,
  contentType: r.content_type ?? undefined,
  filename: r.filename ?? undefined,
  size: optNum(r.size),
  sha256: r.sha256 ?? undefined,
  createdTs: Number(r.created_ts),
  uploadTs: optNum(r.upload_ts),
  unusedExpiresAt: optNum(r.unused_expires_at),
  lastAccessTs: optNum(r.last_access_ts),
  // SQLite hands booleans back as 0/1.
  authenticated: Boolean(r.authenticated),
  quarantinedBy: r.quarantined_by ?? undefined,
});

export { toMedia, type MediaDbRow };

const toThumbnail = (r: ThumbnailDbRow): ThumbnailRow => ({
  mediaId: r.media_id,
  width: Number(r.width),
  height: Number(r.height),
  method: r.method === 'crop' ? 'crop' : 'scale',
  // SQLite hands booleans back as 0/1.
  animated: Boolean(r.animated),
  contentType: r.content_type,
  actualWidth: Number(r.actual_width),
  actualHeight: Number(r.actual_height),
  size: Number(r.size),
  createdTs: Number(r.created_ts),
});

export interface UploadedContent {
  contentType: string;
  filename: string | undefined;
  size: number;
  sha256: string;
}

/** A media row whose bytes are already stored (POST /upload). */
export async function insertUploadedMedia(
  db: Db,
  mediaId: string,
  userId: string,
  content: UploadedContent,
  now: number,
  authenticated: boolean,
): Promise<void> {
  await db('media').insert({
    media_id: mediaId,
    user_id: userId,
    content_type: content.contentType,
    filename: content.filename ?? null,
    size: content.size,
    sha256: content.sha256,
    created_ts: now,
    upload_ts: now,
    unused_expires_at: null,
    last_access_ts: now,
    authenticated,
  });
}

/** A reserved id whose bytes come later (POST /_matrix/media/v1/create). */
export async function insertPendingMedia(db: Db, mediaId: string, userId: string, now: number, unusedExpiresAt: number, authenticated: boolean): Promise<void> {
  await db('media').insert({
    media_id: mediaId,
    user_id: userId,
    created_ts: now,
    upload_ts: null,
    unused_expires_at: unusedExpiresAt,
    last_access_ts: null,
    authenticated,
  });
}

/**
 * Fills in a pending row with its content. Only succeeds while the row is still pending, so of two
 * concurrent uploads exactly one wins; returns whether this one did.
 */
export async function completePendingMedia(db: Db, mediaId: string, content: UploadedContent, now: number): Promise<boolean> {
  const n = await db('media')
    .where({ media_id: mediaId })
    .whereNull('upload_ts')
    .update({
      content_type: content.contentType,
      filename: content.filename ?? null,
      size: content.size,
      sha256: content.sha256,
      upload_ts: now,
      unused_expires_at: null,
      last_access_ts: now,
    });
  return n > 0;
}

export async function getMedia(db: Db, mediaId: string): Promise<MediaRow | undefined> {
  const row = (await db('media').where({ media_id: mediaId }).first()) as MediaDbRow | undefined;
  return row ? toMedia(row) : undefined;
}

/** Pending (not uploaded, not expired) ids a user holds, for the spec's limit on concurrent async uploads. */
export async function countPendingMedia(db: Db, userId: string, now: number): Promise<number> {
  const row = await db('media')
    .where({ user_id: userId })
    .whereNull('upload_ts')
    .andWhere('unused_expires_at', '>', now)
    .count({ n: '*' })
    .first();
  return Number(row?.n ?? 0);
}

export async function touchMedia(db: Db, mediaId: string, now: number): Promise<void> {
  await db('media').where({ media_id: mediaId }).update({ last_access_ts: now });
}

/**
 * Uploaded media last accessed (or, never accessed, uploaded) before `cutoff`, plus pending ids whose
 * reservation ran out before `now`. At most `limit` ids, oldest first.
 */
export async function expiredMediaIds(db: Db, opts: { accessedBefore: number | undefined; now: number; limit: number }): Promise<string[]> {
  const pending = (await db('media')
    .whereNull('upload_ts')
    .andWhere('unused_expires_at', '<=', opts.now)
    .orderBy('unused_expires_at')
    .limit(opts.limit)
    .select('media_id')) as Array<{ media_id: string }>;
  let old: Array<{ media_id: string }> = [];
  const room = opts.limit - pending.length;
  if (opts.accessedBefore !== undefined && room > 0) {
    old = (await db('media')
      .whereNotNull('upload_ts')
      .andWhereRaw('COALESCE(last_access_ts, upload_ts) < ?', [opts.accessedBefore])
      .orderBy('upload_ts')
      .limit(room)
      .select('media_id')) as Array<{ media_id: string }>;
  }
  return [...pending, ...old].map((r) => r.media_id);
}

export async function deleteMedia(db: Db, mediaIds: readonly string[]): Promise<void> {
  if (mediaIds.length === 0) return;
  await db('media_thumbnails').whereIn('media_id', mediaIds).delete();
  await db('media').whereIn('media_id', mediaIds).delete();
}

/** Thumbnails of local media, or of cached remote media (keyed by its filesystem_id). */
export type ThumbnailTable = 'media_thumbnails' | 'remote_media_thumbnails';

export async function getThumbnail(db: Db, key: ThumbnailKey, table: ThumbnailTable = 'media_thumbnails'): Promise<ThumbnailRow | undefined> {
  const row = (await db(table)
    .where({ media_id: key.mediaId, width: key.width, height: key.height, method: key.method, animated: key.animated })
    .first()) as ThumbnailDbRow | undefined;
  return row ? toThumbnail(row) : undefined;
}

export async function listThumbnails(db: Db, mediaId: string): Promise<ThumbnailRow[]> {
  const rows = (await db('media_thumbnails').where({ media_id: mediaId })) as ThumbnailDbRow[];
  return rows.map(toThumbnail);
}

/** Records a generated thumbnail; a concurrent identical insert (another process) is ignored. */
export async function insertThumbnail(db: Db, row: ThumbnailRow, table: ThumbnailTable = 'media_thumbnails'): Promise<void> {
  await db(table)
    .insert({
      media_id: row.mediaId,
      width: row.width,
      height: row.height,
      method: row.method,
      animated: row.animated,
      content_type: row.contentType,
      actual_width: row.actualWidth,
      actual_height: row.actualHeight,
      size: row.size,
      created_ts: row.createdTs,
    })
    .onConflict(['media_id', 'width', 'height', 'method', 'animated'])
    .ignore();
}

/** Up to `limit` ids (uploaded or still pending) that `userId` holds, for erasure. */
export async function mediaIdsOfUser(db: Db, userId: string, limit: number): Promise<string[]> {
  const rows = (await db('media').where({ user_id: userId }).orderBy('media_id').limit(limit).select('media_id')) as Array<{ media_id: string }>;
  return rows.map((r) => r.media_id);
}
