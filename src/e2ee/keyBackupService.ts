import type { Knex } from 'knex';
import { MatrixError, missingParam, notFound } from '../errors.js';
import type { Database } from '../storage/database.js';
import {
  backupVersionState,
  bumpBackupEtag,
  countRoomKeys,
  currentBackupVersion,
  deleteBackupVersion,
  deleteRoomKeys,
  getBackupVersion,
  getRoomKeys,
  getRoomKeysBySession,
  insertBackupVersion,
  maxBackupVersion,
  roomKeyId,
  updateBackupAuthData,
  upsertRoomKeys,
  type BackupVersionInfo,
  type RoomKeyRow,
} from '../storage/repositories/keyBackup.js';
import { dict } from '../util/dict.js';
import { checkBackupAuthData, checkBackupSessionData } from './backupAlgorithms.js';

// Spec: Client-Server API, "Server-side key backups". The server stores what clients encrypted to the
// backup's public key; it never sees a session key. Versions are per user, numbered 1, 2, 3 … and only
// the current (highest live) version accepts new keys.

/** The key metadata the replacement rule looks at. */
export interface KeyBackupMeta {
  isVerified: boolean;
  firstMessageIndex: number;
  forwardedCount: number;
}

/**
 * Spec, "Server-side key backups": when a key is uploaded for a session the backup already has, keep the
 * one with `is_verified` true; if both agree, the lower `first_message_index`; if that is equal too, the
 * lower `forwarded_count`. A complete tie keeps the existing key (as Synapse does), so re-uploads of the
 * same key do not change the etag.
 */
export function shouldReplaceRoomKey(existing: KeyBackupMeta | undefined, candidate: KeyBackupMeta): boolean {
  if (!existing) return true;
  if (existing.isVerified !== candidate.isVerified) return candidate.isVerified;
  if (existing.firstMessageIndex !== candidate.firstMessageIndex) return candidate.firstMessageIndex < existing.firstMessageIndex;
  return candidate.forwardedCount < existing.forwardedCount;
}

export interface UploadedKey {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: unknown;
}

/** Uploaded keys: room id → session id → key (a missing session_data is refused as M_MISSING_PARAM). */
export type UploadedKeys = Record<string, Record<string, Omit<UploadedKey, 'session_data'> & { session_data?: unknown }>>;

export interface BackupVersionJson {
  algorithm: string;
  auth_data: unknown;
  count: number;
  etag: string;
  version: string;
}

export interface KeysUpdateJson {
  etag: string;
  count: number;
}

/** Versions we hand out are decimal integers; anything else names no backup of ours. */
const MAX_VERSION = 2_147_483_647;
export function parseBackupVersion(raw: string): number | undefined {
  if (!/^[1-9][0-9]{0,9}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n <= MAX_VERSION ? n : undefined;
}

const unknownVersion = () => notFound('Unknown backup version');

const versionJson = (v: BackupVersionInfo): BackupVersionJson => ({
  algorithm: v.algorithm,
  auth_data: v.authData,
  count: v.count,
  etag: String(v.etag),
  version: String(v.version),
});

const keyJson = (k: RoomKeyRow): UploadedKey => ({
  first_message_index: k.firstMessageIndex,
  forwarded_count: k.forwardedCount,
  is_verified: k.isVerified,
  session_data: k.sessionData,
});

/** Namespace of the per-user advisory lock (PostgreSQL); the second key is hashtext(user_id). */
const KEY_BACKUP_LOCK = 0x6b657962; // 'keyb'

export class KeyBackupService {
  constructor(private readonly deps: { db: Database }) {}

  /**
   * One transaction per write, serialised per user: SQLite has a single connection anyway; PostgreSQL
   * takes a transaction-scoped advisory lock on the user, so concurrent uploads of the same session or a
   * version created while keys are uploaded never interleave (Synapse uses a per-user linearizer).
   * Key backup writes are not a sync stream, so they do not take the global stream-write lock.
   */
  private unit<T>(userId: string, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    const { db } = this.deps;
    return db.knex.transaction(async (trx) => {
      if (db.dialect === 'postgres') await trx.raw('SELECT pg_advisory_xact_lock(?, hashtext(?))', [KEY_BACKUP_LOCK, userId]);
      return fn(trx);
    });
  }

  // ---- versions ----

  /** POST /room_keys/version: the new version is one above every version the user ever had. */
  createVersion(userId: string, algorithm: string, authData: unknown): Promise<{ version: string }> {
    checkBackupAuthData(algorithm, authData);
    return this.unit(userId, async (trx) => {
      const version = (await maxBackupVersion(trx, userId)) + 1;
      await insertBackupVersion(trx, userId, version, algorithm, authData);
      return { version: String(version) };
    });
  }

  /** GET /room_keys/version[/{version}]: without a version, the current backup. */
  async getVersion(userId: string, rawVersion?: string): Promise<BackupVersionJson> {
    if (rawVersion === undefined) {
      const current = await getBackupVersion(this.deps.db.knex, userId);
      if (!current) throw notFound('No current backup version');
      return versionJson(current);
    }
    const version = parseBackupVersion(rawVersion);
    const info = version === undefined ? undefined : await getBackupVersion(this.deps.db.knex, userId, version);
    if (!info) throw unknownVersion();
    return versionJson(info);
  }

  /** PUT /room_keys/version/{version}: only auth_data changes; algorithm and body version must agree. */
  async updateVersion(
    userId: string,
    rawVersion: string,
    body: { algorithm: string; auth_data: unknown; version?: string | undefined },
  ): Promise<void> {
    if (body.version !== undefined && body.version !== rawVersion) {
      throw new MatrixError('M_INVALID_PARAM', 'Version in body does not match the version in the path');
    }
    const version = parseBackupVersion(rawVersion);
    if (version === undefined) throw unknownVersion();
    await this.unit(userId, async (trx) => {
      const info = await getBackupVersion(trx, userId, version);
      if (!info) throw unknownVersion();
      if (info.algorithm !== body.algorithm) throw new MatrixError('M_INVALID_PARAM', 'Algorithm does not match the backup algorithm');
      checkBackupAuthData(info.algorithm, body.auth_data);
      await updateBackupAuthData(trx, userId, version, body.auth_data);
    });
  }

  /** DELETE /room_keys/version/{version}: succeeds again for an already deleted version, 404 if it never existed. */
  async deleteVersion(userId: string, rawVersion: string): Promise<void> {
    const version = parseBackupVersion(rawVersion);
    if (version === undefined) throw unknownVersion();
    await this.unit(userId, async (trx) => {
      const state = await backupVersionState(trx, userId, version);
      if (state === undefined) throw unknownVersion();
      if (state === 'live') await deleteBackupVersion(trx, userId, version);
    });
  }

  // ---- keys ----

  /**
   * PUT /room_keys/keys[/{roomId}[/{sessionId}]]: keys go only to the current version. Each uploaded key
   * replaces the stored one for its session only if `shouldReplaceRoomKey` says so; the etag moves once
   * per request that changed anything.
   */
  uploadKeys(userId: string, rawVersion: string, keys: UploadedKeys): Promise<KeysUpdateJson> {
    return this.unit(userId, async (trx) => {
      const current = await currentBackupVersion(trx, userId);
      if (!current) throw notFound(`Unknown backup version '${rawVersion}'`);
      if (String(current.version) !== rawVersion) {
        throw new MatrixError('M_WRONG_ROOM_KEYS_VERSION', 'Wrong backup version.', 403, { current_version: String(current.version) });
      }
      const version = current.version;

      const uploaded: RoomKeyRow[] = [];
      for (const [roomId, sessions] of Object.entries(keys)) {
        for (const [sessionId, k] of Object.entries(sessions)) {
          if (k.session_data === undefined) throw missingParam("Missing parameter 'session_data'");
          checkBackupSessionData(current.algorithm, k.session_data);
          uploaded.push({
            roomId,
            sessionId,
            firstMessageIndex: k.first_message_index,
            forwardedCount: k.forwarded_count,
            isVerified: k.is_verified,
            sessionData: k.session_data,
          });
        }
      }
      const existing = await getRoomKeysBySession(
        trx,
        userId,
        version,
        uploaded.map((k) => k.sessionId),
      );
      const winners = uploaded.filter((k) => shouldReplaceRoomKey(existing.get(roomKeyId(k.roomId, k.sessionId)), k));

      let etag = current.etag;
      if (winners.length > 0) {
        await upsertRoomKeys(trx, userId, version, winners);
        etag = await bumpBackupEtag(trx, userId, version);
      }
      return { etag: String(etag), count: await countRoomKeys(trx, userId, version) };
    });
  }

  /** GET /room_keys/keys?version=: every room with at least one key. */
  async getAllKeys(userId: string, rawVersion: string): Promise<{ rooms: Record<string, { sessions: Record<string, UploadedKey> }> }> {
    const rows = await this.readKeys(userId, rawVersion);
    const rooms = dict<{ sessions: Record<string, UploadedKey> }>();
    for (const k of rows) (rooms[k.roomId] ??= { sessions: dict() }).sessions[k.sessionId] = keyJson(k);
    return { rooms };
  }

  /** GET /room_keys/keys/{roomId}?version=: `{sessions: {}}` for a room without keys (spec). */
  async getRoomKeys(userId: string, rawVersion: string, roomId: string): Promise<{ sessions: Record<string, UploadedKey> }> {
    const rows = await this.readKeys(userId, rawVersion, roomId);
    const sessions = dict<UploadedKey>();
    for (const k of rows) sessions[k.sessionId] = keyJson(k);
    return { sessions };
  }

  /** GET /room_keys/keys/{roomId}/{sessionId}?version=: 404 when the backup has no such key. */
  async getSessionKey(userId: string, rawVersion: string, roomId: string, sessionId: string): Promise<UploadedKey> {
    const [row] = await this.readKeys(userId, rawVersion, roomId, sessionId);
    if (!row) throw notFound('No room_keys found');
    return keyJson(row);
  }

  /**
   * DELETE /room_keys/keys[/{roomId}[/{sessionId}]]?version=: any live version (not only the current
   * one); 404 for a deleted or unknown version. The etag moves only if a key was removed.
   */
  deleteKeys(userId: string, rawVersion: string, roomId?: string, sessionId?: string): Promise<KeysUpdateJson> {
    const version = parseBackupVersion(rawVersion);
    if (version === undefined) return Promise.reject(unknownVersion());
    return this.unit(userId, async (trx) => {
      const info = await getBackupVersion(trx, userId, version);
      if (!info) throw unknownVersion();
      const removed = await deleteRoomKeys(trx, userId, version, roomId, sessionId);
      const etag = removed > 0 ? await bumpBackupEtag(trx, userId, version) : info.etag;
      return { etag: String(etag), count: info.count - removed };
    });
  }

  /** Reads keys from a live version (any live one, not only the current); 404 otherwise. */
  private async readKeys(userId: string, rawVersion: string, roomId?: string, sessionId?: string): Promise<RoomKeyRow[]> {
    const version = parseBackupVersion(rawVersion);
    if (version === undefined) throw unknownVersion();
    const { knex } = this.deps.db;
    if ((await backupVersionState(knex, userId, version)) !== 'live') throw unknownVersion();
    return getRoomKeys(knex, userId, version, roomId, sessionId);
  }
}
