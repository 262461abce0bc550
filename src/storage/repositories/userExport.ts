import type { Db } from '../database.js';
import type { NewReport } from './reports.js';

// Reads for `skjol export-data`: everything stored about one user that no other repository lists by user.
// Read-only; each function returns every row (a user's own rows are few, except media, which is paged).

const num = (v: unknown): number => Number(v);
const optNum = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export interface UserReceipt {
  roomId: string;
  receiptType: string;
  threadId: string | null;
  eventId: string;
  ts: number;
}

export async function receiptsOfUser(db: Db, userId: string): Promise<UserReceipt[]> {
  const rows: Array<Record<string, unknown>> = await db('receipts').where({ user_id: userId }).orderBy('stream_id');
  return rows.map((r) => ({
    roomId: String(r.room_id),
    receiptType: String(r.receipt_type),
    threadId: r.thread_id === '' ? null : String(r.thread_id),
    eventId: String(r.event_id),
    ts: num(r.ts),
  }));
}

export interface UserMedia {
  mediaId: string;
  contentType: string | null;
  filename: string | null;
  size: number | null;
  sha256: string | null;
  createdTs: number;
  uploadTs: number | null;
  lastAccessTs: number | null;
}

/** The user's local uploads, oldest first, `limit` at a time after `afterMediaId` (keyset paging). */
export async function mediaOfUser(db: Db, userId: string, afterMediaId: string | undefined, limit: number): Promise<UserMedia[]> {
  const q = db('media').where({ user_id: userId }).orderBy('media_id').limit(limit);
  if (afterMediaId !== undefined) q.andWhere('media_id', '>', afterMediaId);
  const rows: Array<Record<string, unknown>> = await q;
  return rows.map((r) => ({
    mediaId: String(r.media_id),
    contentType: (r.content_type as string | null) ?? null,
    filename: (r.filename as string | null) ?? null,
    size: optNum(r.size),
    sha256: (r.sha256 as string | null) ?? null,
    createdTs: num(r.created_ts),
    uploadTs: optNum(r.upload_ts),
    lastAccessTs: optNum(r.last_access_ts),
  }));
}

export async function filtersOfUser(db: Db, userId: string): Promise<Array<{ filterId: number; filterJson: string }>> {
  const rows: Array<{ filter_id: unknown; filter_json: string }> = await db('filters').where({ user_id: userId }).orderBy('filter_id');
  return rows.map((r) => ({ filterId: num(r.filter_id), filterJson: r.filter_json }));
}

export type UserReport = Omit<NewReport, 'reporter'>;

/** Reports the user filed (the content they reported stays in its room). */
export async function reportsByUser(db: Db, userId: string): Promise<UserReport[]> {
  const rows: Array<Record<string, unknown>> = await db('reports').where({ reporter: userId }).orderBy('id');
  return rows.map((r) => ({
    roomId: (r.room_id as string | null) ?? null,
    eventId: (r.event_id as string | null) ?? null,
    targetUserId: (r.target_user_id as string | null) ?? null,
    reason: (r.reason as string | null) ?? null,
    score: optNum(r.score),
    receivedTs: num(r.received_ts),
  }));
}

export interface UserBackupVersion {
  version: number;
  algorithm: string;
  authData: unknown;
  etag: number;
  deleted: boolean;
}

/** Every key backup version the user made, deleted ones included (their rows stay to keep numbers unique). */
export async function backupVersionsOfUser(db: Db, userId: string): Promise<UserBackupVersion[]> {
  const rows: Array<Record<string, unknown>> = await db('room_key_versions').where({ user_id: userId }).orderBy('version');
  return rows.map((r) => ({
    version: num(r.version),
    algorithm: String(r.algorithm),
    authData: JSON.parse(String(r.auth_data)) as unknown,
    etag: num(r.etag),
    deleted: Boolean(r.deleted),
  }));
}

export interface BackedUpSession {
  version: number;
  roomId: string;
  sessionId: string;
  firstMessageIndex: number;
  forwardedCount: number;
  isVerified: boolean;
}

/** Which sessions are backed up, without their (encrypted) session_data. */
export async function backedUpSessionsOfUser(db: Db, userId: string): Promise<BackedUpSession[]> {
  const rows: Array<Record<string, unknown>> = await db('room_keys')
    .where({ user_id: userId })
    .orderBy([{ column: 'version' }, { column: 'room_id' }, { column: 'session_id' }])
    .select('version', 'room_id', 'session_id', 'first_message_index', 'forwarded_count', 'is_verified');
  return rows.map((r) => ({
    version: num(r.version),
    roomId: String(r.room_id),
    sessionId: String(r.session_id),
    firstMessageIndex: num(r.first_message_index),
    forwardedCount: num(r.forwarded_count),
    isVerified: Boolean(r.is_verified),
  }));
}

/** The id of the user's dehydrated device, if any (its device_data is the client's ciphertext). */
export async function dehydratedDeviceOf(db: Db, userId: string): Promise<string | undefined> {
  const row = await db('dehydrated_devices').where({ user_id: userId }).first('device_id');
  return row ? String(row.device_id) : undefined;
}

/** Room aliases the user created. */
export async function aliasesCreatedBy(db: Db, userId: string): Promise<Array<{ alias: string; roomId: string; createdTs: number }>> {
  const rows: Array<Record<string, unknown>> = await db('room_aliases').where({ creator: userId }).orderBy('room_alias');
  return rows.map((r) => ({ alias: String(r.room_alias), roomId: String(r.room_id), createdTs: num(r.created_ts) }));
}
