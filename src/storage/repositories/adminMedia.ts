import type { Db } from '../database.js';
import { toMedia, type MediaDbRow, type MediaRow } from './media.js';

// Media as Synapse's admin API lists, quarantines and deletes it (`media`, `remote_media_cache`).

export const USER_MEDIA_ORDERS = ['media_id', 'upload_name', 'created_ts', 'last_access_ts', 'media_length', 'media_type', 'quarantined_by', 'safe_from_quarantine'] as const;
export type UserMediaOrder = (typeof USER_MEDIA_ORDERS)[number];

const ORDER_COLUMNS: Readonly<Record<UserMediaOrder, string>> = {
  media_id: 'media_id',
  upload_name: 'filename',
  created_ts: 'created_ts',
  last_access_ts: 'last_access_ts',
  media_length: 'size',
  media_type: 'content_type',
  quarantined_by: 'quarantined_by',
  // Skjól has no "safe from quarantine" flag: ordering by it is ordering by id.
  safe_from_quarantine: 'media_id',
};

export async function userMediaPage(
  db: Db,
  userId: string,
  q: { from: number; limit: number; orderBy: UserMediaOrder; dir: 'f' | 'b' },
): Promise<{ media: MediaRow[]; total: number }> {
  const count = (await db('media').where({ user_id: userId }).count({ n: '*' }).first()) as { n: number | string } | undefined;
  const rows = (await db('media')
    .where({ user_id: userId })
    .orderBy([{ column: ORDER_COLUMNS[q.orderBy], order: q.dir === 'b' ? 'desc' : 'asc' }, { column: 'media_id', order: 'asc' }])
    .offset(q.from)
    .limit(q.limit)) as MediaDbRow[];
  return { media: rows.map(toMedia), total: Number(count?.n ?? 0) };
}

export async function setLocalQuarantine(db: Db, mediaId: string, by: string | null): Promise<boolean> {
  return Number(await db('media').where({ media_id: mediaId }).update({ quarantined_by: by })) > 0;
}

export async function setRemoteQuarantine(db: Db, origin: string, mediaId: string, by: string | null): Promise<boolean> {
  return Number(await db('remote_media_cache').where({ media_origin: origin, media_id: mediaId }).update({ quarantined_by: by })) > 0;
}

/** Local media last used before `beforeTs` and larger than `sizeGt`, optionally sparing avatars in use. */
export async function localMediaBefore(db: Db, q: { beforeTs: number; sizeGt: number; keepProfiles: boolean; serverName: string; limit: number }): Promise<string[]> {
  const query = db('media')
    .whereNotNull('upload_ts')
    .andWhere((w) => w.where('last_access_ts', '<', q.beforeTs).orWhere((x) => x.whereNull('last_access_ts').andWhere('created_ts', '<', q.beforeTs)))
    .andWhere('size', '>', q.sizeGt)
    .orderBy('media_id')
    .limit(q.limit)
    .select('media_id');
  if (q.keepProfiles) {
    const prefix = `mxc://${q.serverName}/`;
    const avatars = (await db('users').whereNotNull('avatar_url').select('avatar_url')) as Array<{ avatar_url: string }>;
    const kept = avatars.filter((a) => a.avatar_url.startsWith(prefix)).map((a) => a.avatar_url.slice(prefix.length));
    if (kept.length) query.whereNotIn('media_id', kept);
  }
  return ((await query) as Array<{ media_id: string }>).map((r) => r.media_id);
}
