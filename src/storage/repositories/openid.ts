import type { Db } from '../database.js';

// Spec: "OpenID" — tokens a user hands to another service, which checks them at /openid/userinfo.

export async function insertOpenIdToken(db: Db, tokenHash: string, userId: string, expiresTs: number): Promise<void> {
  await db('openid_tokens').insert({ token_hash: tokenHash, user_id: userId, expires_ts: expiresTs });
}

/** The owner of an unexpired token. */
export async function openIdTokenOwner(db: Db, tokenHash: string, now: number): Promise<string | undefined> {
  const row = await db('openid_tokens').where({ token_hash: tokenHash }).where('expires_ts', '>', now).first('user_id');
  return row?.user_id;
}

export async function deleteExpiredOpenIdTokens(db: Db, now: number): Promise<void> {
  await db('openid_tokens').where('expires_ts', '<=', now).delete();
}
