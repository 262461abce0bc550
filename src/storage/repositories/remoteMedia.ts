import type { Db } from '../database.js';

// The cache of other servers' media (`remote_media_cache`). Thumbnails of it live in
// `remote_media_thumbnails`, read and written by the thumbnail functions of ./media.ts.

export interface RemoteMediaRow {
  origin: string;
  mediaId: string;
  filesystemId: string;
  contentType: string;
  filename: string | undefined;
  size: number;
  sha256: string;
  createdTs: number;
  lastAccessTs: number;
  /** Fetched while enable_authenticated_media was on: never served on the legacy unauthenticated paths. */
  authenticated: boolean;
  /** The admin who quarantined it (Synapse admin API): never served again. */
  quarantinedBy?: string | undefined;
}

interface RemoteMediaDbRow {
  media_origin: string;
  media_id: string;
  filesystem_id: string;
  content_type: string;
  filename: string | null;
  size: number | string;
  sha256: string;
  created_ts: number | string;
  last_access_ts: number | string;
  authenticated: boolean | number | null;
  quarantined_by?: string | null;
}

const toRow = (r: RemoteMediaDbRow): RemoteMediaRow => ({
  origin: r.media_origin,
  mediaId: r.media_id,
  filesystemId: r.filesystem_id,
  contentType: r.content_type,
  filename: r.filename ?? undefined,
  size: Number(r.size),
  sha256: r.sha256,
  createdTs: Number(r.created_ts),
  lastAccessTs: Number(r.last_access_ts),
  authenticated: Boolean(r.authenticated),
  quarantinedBy: r.quarantined_by ?? undefined,
});

export async function getRemoteMedia(db: Db, origin: string, mediaId: string): Promise<RemoteMediaRow | undefined> {
  const row = (await db('remote_media_cache').where({ media_origin: origin, media_id: mediaId }).first()) as RemoteMediaDbRow | undefined;
  return row ? toRow(row) : undefined;
}

/** Records a fetched item; returns false when another fetch recorded it first (its row stands). */
export async function insertRemoteMedia(db: Db, row: RemoteMediaRow): Promise<boolean> {
  const inserted = await db('remote_media_cache')
    .insert({
      media_origin: row.origin,
      media_id: row.mediaId,
      filesystem_id: row.filesystemId,
      content_type: row.contentType,
      filename: row.filename ?? null,
      size: row.size,
      sha256: row.sha256,
      created_ts: row.createdTs,
      last_access_ts: row.lastAccessTs,
      authenticated: row.authenticated,
    })
    .onConflict(['media_origin', 'media_id'])
    .ignore()
    .returning('media_id');
  return (inserted as unknown[]).length > 0;
}

export async function touchRemoteMedia(db: Db, origin: string, mediaId: string, now: number): Promise<void> {
  await db('remote_media_cache').where({ media_origin: origin, media_id: mediaId }).update({ last_access_ts: now });
}

/** Cached items not downloaded since `cutoff`, oldest first. */
export async function staleRemoteMedia(db: Db, cutoff: number, limit: number): Promise<RemoteMediaRow[]> {
  const rows = (await db('remote_media_cache').where('last_access_ts', '<', cutoff).orderBy('last_access_ts').limit(limit)) as RemoteMediaDbRow[];
  return rows.map(toRow);
}

export async function deleteRemoteMedia(db: Db, rows: readonly RemoteMediaRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db('remote_media_thumbnails').whereIn('media_id', rows.map((r) => r.filesystemId)).delete();
  await db('remote_media_cache').whereIn('filesystem_id', rows.map((r) => r.filesystemId)).delete();
}
