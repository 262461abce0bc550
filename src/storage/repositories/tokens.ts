import type { Db } from '../database.js';

// Tokens are stored only as their sha256 hex digest; the plaintext never reaches the database.

export interface AccessTokenLookup {
  id: number;
  userId: string;
  deviceId: string | null;
  expiresTs: number | null;
  refreshTokenId: number | null;
  used: boolean;
  deactivated: boolean;
  isGuest: boolean;
  appserviceId: string | null;
}

export async function insertAccessToken(
  db: Db,
  t: { tokenHash: string; userId: string; deviceId: string | null; createdTs: number; expiresTs: number | null; refreshTokenId: number | null },
): Promise<number> {
  const [row] = await db('access_tokens')
    .insert({
      token_hash: t.tokenHash,
      user_id: t.userId,
      device_id: t.deviceId,
      created_ts: t.createdTs,
      expires_ts: t.expiresTs,
      refresh_token_id: t.refreshTokenId,
      used: false,
    })
    .returning('id');
  return Number((row as { id: number }).id);
}

export async function findAccessToken(db: Db, tokenHash: string): Promise<AccessTokenLookup | undefined> {
  const row = await db('access_tokens as t')
    .join('users as u', 'u.user_id', 't.user_id')
    .where('t.token_hash', tokenHash)
    .first(
      't.id', 't.user_id', 't.device_id', 't.expires_ts', 't.refresh_token_id', 't.used',
      'u.deactivated', 'u.is_guest', 'u.appservice_id',
    );
  if (!row) return undefined;
  return {
    id: Number(row.id),
    userId: row.user_id,
    deviceId: row.device_id,
    expiresTs: row.expires_ts === null ? null : Number(row.expires_ts),
    refreshTokenId: row.refresh_token_id === null ? null : Number(row.refresh_token_id),
    used: Boolean(row.used),
    deactivated: Boolean(row.deactivated),
    isGuest: Boolean(row.is_guest),
    appserviceId: row.appservice_id,
  };
}

export async function markAccessTokenUsed(db: Db, id: number): Promise<void> {
  await db('access_tokens').where({ id }).update({ used: true });
}

export async function deleteAccessToken(db: Db, id: number): Promise<void> {
  await db('access_tokens').where({ id }).delete();
}

export async function deleteAccessTokensForDevices(db: Db, userId: string, deviceIds: readonly string[]): Promise<void> {
  if (deviceIds.length === 0) return;
  await db('access_tokens').where({ user_id: userId }).whereIn('device_id', deviceIds).delete();
}

export async function deleteAccessTokensForUser(db: Db, userId: string, exceptTokenId?: number): Promise<void> {
  const q = db('access_tokens').where({ user_id: userId });
  if (exceptTokenId !== undefined) q.andWhereNot({ id: exceptTokenId });
  await q.delete();
}

export async function deleteAccessTokensForRefreshTokens(db: Db, refreshTokenIds: readonly number[]): Promise<void> {
  if (refreshTokenIds.length === 0) return;
  await db('access_tokens').whereIn('refresh_token_id', refreshTokenIds).delete();
}

export interface RefreshTokenRecord {
  id: number;
  userId: string;
  deviceId: string;
  expiresTs: number | null;
  nextTokenId: number | null;
}

export async function insertRefreshToken(
  db: Db,
  t: { tokenHash: string; userId: string; deviceId: string; createdTs: number; expiresTs: number | null },
): Promise<number> {
  const [row] = await db('refresh_tokens')
    .insert({ token_hash: t.tokenHash, user_id: t.userId, device_id: t.deviceId, created_ts: t.createdTs, expires_ts: t.expiresTs })
    .returning('id');
  return Number((row as { id: number }).id);
}

export async function findRefreshToken(db: Db, tokenHash: string): Promise<RefreshTokenRecord | undefined> {
  const row = await db('refresh_tokens').where({ token_hash: tokenHash }).first('id', 'user_id', 'device_id', 'expires_ts', 'next_token_id');
  if (!row) return undefined;
  return {
    id: Number(row.id),
    userId: row.user_id,
    deviceId: row.device_id,
    expiresTs: row.expires_ts === null ? null : Number(row.expires_ts),
    nextTokenId: row.next_token_id === null ? null : Number(row.next_token_id),
  };
}

export async function setNextRefreshToken(db: Db, id: number, nextId: number): Promise<void> {
  await db('refresh_tokens').where({ id }).update({ next_token_id: nextId });
}

/** IDs of the refresh tokens that were rotated into `nextId`. */
export async function predecessorsOf(db: Db, nextId: number): Promise<number[]> {
  const ids = (await db('refresh_tokens').where({ next_token_id: nextId }).pluck('id')) as Array<number | string>;
  return ids.map(Number);
}

export async function deleteRefreshTokens(db: Db, ids: readonly number[]): Promise<void> {
  if (ids.length === 0) return;
  await db('refresh_tokens').whereIn('id', ids).delete();
}

export async function deleteRefreshTokensForDevices(db: Db, userId: string, deviceIds: readonly string[]): Promise<void> {
  if (deviceIds.length === 0) return;
  await db('refresh_tokens').where({ user_id: userId }).whereIn('device_id', deviceIds).delete();
}

export async function deleteRefreshTokensForUser(db: Db, userId: string, exceptDeviceId?: string): Promise<void> {
  const q = db('refresh_tokens').where({ user_id: userId });
  if (exceptDeviceId !== undefined) q.andWhereNot({ device_id: exceptDeviceId });
  await q.delete();
}
