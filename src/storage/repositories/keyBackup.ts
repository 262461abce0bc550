import type { Db } from '../database.js';

// Server-side key backups (spec: Client-Server API, "Server-side key backups"): one row per backup
// version in `room_key_versions` (soft-deleted, so a deleted version is told apart from one that never
// existed and version numbers are never reused) and the encrypted session keys in `room_keys`.
// Repositories never open transactions; KeyBackupService owns the unit of work.

export interface BackupVersionRow {
  version: number;
  algorithm: string;
  /** Any JSON value; an object for the spec's algorithm (checked by the service). */
  authData: unknown;
  etag: number;
}

export interface BackupVersionInfo extends BackupVersionRow {
  /** Number of keys stored in this version. */
  count: number;
}

/** One stored session key; `sessionData` is the client's ciphertext, kept as sent. */
export interface RoomKeyRow {
  roomId: string;
  sessionId: string;
  firstMessageIndex: number;
  forwardedCount: number;
  isVerified: boolean;
  sessionData: unknown;
}

interface VersionDbRow {
  version: number | string;
  algorithm: string;
  auth_data: string;
  etag: number | string;
  count?: number | string;
}

interface KeyDbRow {
  room_id: string;
  session_id: string;
  first_message_index: number | string;
  forwarded_count: number | string;
  is_verified: boolean | number;
  session_data: string;
}

const toVersion = (r: VersionDbRow): BackupVersionRow => ({
  version: Number(r.version),
  algorithm: r.algorithm,
  authData: JSON.parse(r.auth_data) as unknown,
  etag: Number(r.etag),
});

const toKey = (r: KeyDbRow): RoomKeyRow => ({
  roomId: r.room_id,
  sessionId: r.session_id,
  firstMessageIndex: Number(r.first_message_index),
  forwardedCount: Number(r.forwarded_count),
  // SQLite hands booleans back as 0/1.
  isVerified: Boolean(r.is_verified),
  sessionData: JSON.parse(r.session_data) as unknown,
});

/** SQLite's default limit on bound variables is 999; 8 columns a row keeps batches well below it. */
const INSERT_BATCH = 100;
const IN_BATCH = 500;

/** Highest version number the user ever had, deleted ones included (0 when none). */
export async function maxBackupVersion(db: Db, userId: string): Promise<number> {
  const row = await db('room_key_versions').where({ user_id: userId }).max({ m: 'version' }).first();
  return Number(row?.m ?? 0);
}

export async function insertBackupVersion(
  db: Db,
  userId: string,
  version: number,
  algorithm: string,
  authData: unknown,
): Promise<void> {
  await db('room_key_versions').insert({
    user_id: userId,
    version,
    algorithm,
    auth_data: JSON.stringify(authData),
    etag: 0,
    deleted: false,
  });
}

/**
 * A live (not deleted) version with its key count, read in one statement so count and etag agree.
 * Without `version`, the current backup: the highest live version.
 */
export async function getBackupVersion(db: Db, userId: string, version?: number): Promise<BackupVersionInfo | undefined> {
  const q = db('room_key_versions as v')
    .where({ 'v.user_id': userId, 'v.deleted': false })
    .select(
      'v.version',
      'v.algorithm',
      'v.auth_data',
      'v.etag',
      db('room_keys as k')
        .count('*')
        .whereRaw('?? = ??', ['k.user_id', 'v.user_id'])
        .andWhereRaw('?? = ??', ['k.version', 'v.version'])
        .as('count'),
    );
  if (version !== undefined) q.andWhere('v.version', version);
  else q.orderBy('v.version', 'desc').limit(1);
  const row = (await q.first()) as VersionDbRow | undefined;
  return row ? { ...toVersion(row), count: Number(row.count ?? 0) } : undefined;
}

/** The current backup's number only (no count): what uploads are checked against. */
export async function currentBackupVersion(db: Db, userId: string): Promise<BackupVersionRow | undefined> {
  const row = (await db('room_key_versions')
    .where({ user_id: userId, deleted: false })
    .orderBy('version', 'desc')
    .first('version', 'algorithm', 'auth_data', 'etag')) as VersionDbRow | undefined;
  return row ? toVersion(row) : undefined;
}

/** Live or deleted; undefined when the version never existed. */
export async function backupVersionState(db: Db, userId: string, version: number): Promise<'live' | 'deleted' | undefined> {
  const row = await db('room_key_versions').where({ user_id: userId, version }).first('deleted');
  if (!row) return undefined;
  return row.deleted ? 'deleted' : 'live';
}

export async function updateBackupAuthData(db: Db, userId: string, version: number, authData: unknown): Promise<void> {
  await db('room_key_versions').where({ user_id: userId, version }).update({ auth_data: JSON.stringify(authData) });
}

/** Marks the version deleted and removes its keys. */
export async function deleteBackupVersion(db: Db, userId: string, version: number): Promise<void> {
  await db('room_keys').where({ user_id: userId, version }).delete();
  await db('room_key_versions').where({ user_id: userId, version }).update({ deleted: true });
}

/** Bumps the version's etag and returns the new value. */
export async function bumpBackupEtag(db: Db, userId: string, version: number): Promise<number> {
  await db('room_key_versions').where({ user_id: userId, version }).increment('etag', 1);
  const row = await db('room_key_versions').where({ user_id: userId, version }).first('etag');
  return Number(row?.etag ?? 0);
}

export async function countRoomKeys(db: Db, userId: string, version: number): Promise<number> {
  const row = await db('room_keys').where({ user_id: userId, version }).count({ c: '*' }).first();
  return Number(row?.c ?? 0);
}

/** Stored keys of one version, optionally narrowed to a room or to one session of a room. */
export async function getRoomKeys(db: Db, userId: string, version: number, roomId?: string, sessionId?: string): Promise<RoomKeyRow[]> {
  const q = db('room_keys').where({ user_id: userId, version });
  if (roomId !== undefined) q.andWhere('room_id', roomId);
  if (sessionId !== undefined) q.andWhere('session_id', sessionId);
  const rows: KeyDbRow[] = await q
    .orderBy(['room_id', 'session_id'])
    .select('room_id', 'session_id', 'first_message_index', 'forwarded_count', 'is_verified', 'session_data');
  return rows.map(toKey);
}

/**
 * The stored keys for the given sessions (looked up by session id, which is the megolm session's
 * public key; the caller matches rooms). Keyed `${roomId}\u0000${sessionId}`.
 */
export async function getRoomKeysBySession(
  db: Db,
  userId: string,
  version: number,
  sessionIds: readonly string[],
): Promise<Map<string, RoomKeyRow>> {
  const out = new Map<string, RoomKeyRow>();
  const unique = [...new Set(sessionIds)];
  for (let i = 0; i < unique.length; i += IN_BATCH) {
    const rows: KeyDbRow[] = await db('room_keys')
      .where({ user_id: userId, version })
      .whereIn('session_id', unique.slice(i, i + IN_BATCH))
      .select('room_id', 'session_id', 'first_message_index', 'forwarded_count', 'is_verified', 'session_data');
    for (const r of rows) out.set(roomKeyId(r.room_id, r.session_id), toKey(r));
  }
  return out;
}

export const roomKeyId = (roomId: string, sessionId: string): string => `${roomId}\u0000${sessionId}`;

/** Inserts or replaces the given keys (the caller has already decided they win). */
export async function upsertRoomKeys(db: Db, userId: string, version: number, keys: readonly RoomKeyRow[]): Promise<void> {
  const rows = keys.map((k) => ({
    user_id: userId,
    version,
    room_id: k.roomId,
    session_id: k.sessionId,
    first_message_index: k.firstMessageIndex,
    forwarded_count: k.forwardedCount,
    is_verified: k.isVerified,
    session_data: JSON.stringify(k.sessionData),
  }));
  for (let i = 0; i < rows.length; i += INSERT_BATCH) {
    await db('room_keys')
      .insert(rows.slice(i, i + INSERT_BATCH))
      .onConflict(['user_id', 'version', 'room_id', 'session_id'])
      .merge(['first_message_index', 'forwarded_count', 'is_verified', 'session_data']);
  }
}

/** Deletes keys of one version (all, a room's, or one session); returns how many went. */
export async function deleteRoomKeys(db: Db, userId: string, version: number, roomId?: string, sessionId?: string): Promise<number> {
  const q = db('room_keys').where({ user_id: userId, version });
  if (roomId !== undefined) q.andWhere('room_id', roomId);
  if (sessionId !== undefined) q.andWhere('session_id', sessionId);
  return Number(await q.delete());
}
