import type { Db } from '../database.js';

export interface RegistrationTokenRecord {
  token: string;
  usesAllowed: number | null;
  pending: number;
  completed: number;
  expiryTime: number | null;
}

export async function getRegistrationToken(db: Db, token: string): Promise<RegistrationTokenRecord | undefined> {
  const row = await db('registration_tokens').where({ token }).first();
  if (!row) return undefined;
  return {
    token: row.token,
    usesAllowed: row.uses_allowed === null ? null : Number(row.uses_allowed),
    pending: Number(row.pending),
    completed: Number(row.completed),
    expiryTime: row.expiry_time === null ? null : Number(row.expiry_time),
  };
}

export async function insertRegistrationToken(db: Db, token: string, usesAllowed: number | null, expiryTime: number | null): Promise<void> {
  await db('registration_tokens').insert({ token, uses_allowed: usesAllowed, expiry_time: expiryTime });
}

export async function addPending(db: Db, token: string): Promise<void> {
  await db('registration_tokens').where({ token }).increment('pending', 1);
}

export async function releasePending(db: Db, token: string): Promise<void> {
  await db('registration_tokens').where({ token }).andWhere('pending', '>', 0).decrement('pending', 1);
}

export async function completePending(db: Db, token: string): Promise<void> {
  await db('registration_tokens')
    .where({ token })
    .update({ pending: db.raw('CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END'), completed: db.raw('completed + 1') });
}
