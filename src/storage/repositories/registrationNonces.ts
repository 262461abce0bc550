import type { Db } from '../database.js';

// Nonces for shared-secret registration (Synapse's admin API): single use, short-lived.
export async function insertNonce(db: Db, nonce: string, createdTs: number): Promise<void> {
  await db('registration_nonces').insert({ nonce, created_ts: createdTs });
}

/** Consumes a nonce; true when it existed and was issued at or after `notBeforeTs`. */
export async function consumeNonce(db: Db, nonce: string, notBeforeTs: number): Promise<boolean> {
  const row = await db('registration_nonces').where({ nonce }).first('created_ts');
  if (!row) return false;
  const deleted = await db('registration_nonces').where({ nonce }).delete();
  return deleted > 0 && Number(row.created_ts) >= notBeforeTs;
}

export async function deleteNoncesBefore(db: Db, beforeTs: number): Promise<void> {
  await db('registration_nonces').where('created_ts', '<', beforeTs).delete();
}
