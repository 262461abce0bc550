import type { Db } from '../database.js';

// Spec: "POST /login/get_token" and the m.login.token login type: single-use, expiring tokens.

export async function insertLoginToken(db: Db, tokenHash: string, userId: string, createdTs: number, expiresTs: number): Promise<void> {
  await db('login_tokens').insert({ token_hash: tokenHash, user_id: userId, created_ts: createdTs, expires_ts: expiresTs });
}

/**
 * Uses a token up: deletes it and returns its owner if it existed and had not expired. The delete decides
 * between two concurrent logins with the same token, so only one of them gets the user.
 */
export async function consumeLoginToken(db: Db, tokenHash: string, now: number): Promise<string | undefined> {
  const row = await db('login_tokens').where({ token_hash: tokenHash }).first('user_id', 'expires_ts');
  if (!row) return undefined;
  const deleted = await db('login_tokens').where({ token_hash: tokenHash }).delete();
  if (deleted !== 1 || Number(row.expires_ts) <= now) return undefined;
  return row.user_id;
}

export async function deleteExpiredLoginTokens(db: Db, now: number): Promise<void> {
  await db('login_tokens').where('expires_ts', '<=', now).delete();
}
