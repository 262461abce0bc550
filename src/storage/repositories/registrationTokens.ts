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
  return row ? toRecord(row) : undefined;
}

function toRecord(row: Record<string, unknown>): RegistrationTokenRecord {
  return {
    token: row.token as string,
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

/** Every token, optionally only the valid (or only the invalid) ones at `now` (Synapse admin API). */
export async function listRegistrationTokens(db: Db, valid: boolean | undefined, now: number): Promise<RegistrationTokenRecord[]> {
  const rows: Array<Record<string, unknown>> = await db('registration_tokens').orderBy('token');
  const all = rows.map(toRecord);
  if (valid === undefined) return all;
  return all.filter((t) => registrationTokenUsable(t, now) === valid);
}

/** Uses left and not expired. */
export function registrationTokenUsable(t: RegistrationTokenRecord, now: number): boolean {
  return (t.usesAllowed === null || t.pending + t.completed < t.usesAllowed) && (t.expiryTime === null || t.expiryTime > now);
}

export async function updateRegistrationToken(db: Db, token: string, change: { usesAllowed?: number | null; expiryTime?: number | null }): Promise<boolean> {
  const update: Record<string, number | null> = {};
  if (change.usesAllowed !== undefined) update.uses_allowed = change.usesAllowed;
  if (change.expiryTime !== undefined) update.expiry_time = change.expiryTime;
  if (!Object.keys(update).length) return (await getRegistrationToken(db, token)) !== undefined;
  return Number(await db('registration_tokens').where({ token }).update(update)) > 0;
}

export async function deleteRegistrationToken(db: Db, token: string): Promise<boolean> {
  return Number(await db('registration_tokens').where({ token }).delete()) > 0;
}
