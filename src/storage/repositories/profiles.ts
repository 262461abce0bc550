import type { Db } from '../database.js';

export interface Profile {
  displayname: string | null;
  avatar_url: string | null;
}

export async function getProfile(db: Db, userId: string): Promise<Profile | undefined> {
  const row = await db('users').where({ user_id: userId }).first('displayname', 'avatar_url', 'deactivated');
  if (!row) return undefined;
  return { displayname: row.displayname ?? null, avatar_url: row.avatar_url ?? null };
}

export async function setProfileField(db: Db, userId: string, field: 'displayname' | 'avatar_url', value: string | null): Promise<void> {
  // The field names a column: never let anything else through, whatever the caller checked.
  if (field !== 'displayname' && field !== 'avatar_url') throw new Error(`not a profile column: ${String(field)}`);
  await db('users').where({ user_id: userId }).update({ [field]: value });
}
