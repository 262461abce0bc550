import type { Db } from '../database.js';

export interface UserRecord {
  userId: string;
  passwordHash: string | null;
  createdTs: number;
  deactivated: boolean;
  erased: boolean;
  admin: boolean;
  isGuest: boolean;
  appserviceId: string | null;
  displayname: string | null;
  avatarUrl: string | null;
}

interface UserRow {
  user_id: string;
  password_hash: string | null;
  created_ts: number | string;
  deactivated: boolean | number;
  erased: boolean | number;
  admin: boolean | number;
  is_guest: boolean | number;
  appservice_id: string | null;
  displayname: string | null;
  avatar_url: string | null;
}

// SQLite returns booleans as 0/1 and PostgreSQL returns bigints as strings: normalise both here.
function toRecord(row: UserRow): UserRecord {
  return {
    userId: row.user_id,
    passwordHash: row.password_hash,
    createdTs: Number(row.created_ts),
    deactivated: Boolean(row.deactivated),
    erased: Boolean(row.erased),
    admin: Boolean(row.admin),
    isGuest: Boolean(row.is_guest),
    appserviceId: row.appservice_id,
    displayname: row.displayname,
    avatarUrl: row.avatar_url,
  };
}

export async function getUser(db: Db, userId: string): Promise<UserRecord | undefined> {
  const row = (await db('users').where({ user_id: userId }).first()) as UserRow | undefined;
  return row ? toRecord(row) : undefined;
}

export async function userExists(db: Db, userId: string): Promise<boolean> {
  return (await db('users').where({ user_id: userId }).first('user_id')) !== undefined;
}

/** Inserts a user; returns false (and changes nothing) when the user ID is already taken. */
export async function insertUser(
  db: Db,
  user: { userId: string; passwordHash: string | null; createdTs: number; admin: boolean; isGuest: boolean; appserviceId: string | null; displayname: string | null },
): Promise<boolean> {
  const inserted = await db('users')
    .insert({
      user_id: user.userId,
      password_hash: user.passwordHash,
      created_ts: user.createdTs,
      admin: user.admin,
      is_guest: user.isGuest,
      appservice_id: user.appserviceId,
      displayname: user.displayname,
    })
    .onConflict('user_id')
    .ignore()
    .returning('user_id');
  return inserted.length > 0;
}

/** Makes a guest account a full user (spec "Guest access", upgrading); false if it is not a guest any more. */
export async function upgradeGuestUser(db: Db, userId: string, passwordHash: string | null): Promise<boolean> {
  const n = await db('users').where({ user_id: userId, is_guest: true, deactivated: false }).update({ is_guest: false, password_hash: passwordHash });
  return Number(n) > 0;
}

export async function setPasswordHash(db: Db, userId: string, passwordHash: string | null): Promise<void> {
  await db('users').where({ user_id: userId }).update({ password_hash: passwordHash });
}

export async function markDeactivated(db: Db, userId: string, erase: boolean): Promise<void> {
  await db('users').where({ user_id: userId }).update({ deactivated: true, erased: erase, password_hash: null });
}

/** Which of `userIds` are local accounts deactivated with erasure (their events are served redacted). */
export async function erasedUserIds(db: Db, userIds: readonly string[]): Promise<Set<string>> {
  if (!userIds.length) return new Set();
  const rows: Array<{ user_id: string }> = await db('users').whereIn('user_id', [...new Set(userIds)]).andWhere('erased', true).select('user_id');
  return new Set(rows.map((r) => r.user_id));
}
