import type { Db } from '../database.js';

/** Transactions received from other servers, with the answer given (spec: "Transactions"). */

export async function getInboundTransaction(db: Db, origin: string, txnId: string): Promise<unknown | undefined> {
  const row = await db('federation_inbound_txns').where({ origin, txn_id: txnId }).first('response');
  return row ? JSON.parse(row.response) : undefined;
}

export async function putInboundTransaction(db: Db, origin: string, txnId: string, response: unknown, receivedTs: number): Promise<void> {
  await db('federation_inbound_txns')
    .insert({ origin, txn_id: txnId, response: JSON.stringify(response), received_ts: receivedTs })
    .onConflict(['origin', 'txn_id'])
    .ignore();
}

/** Forgets answers older than `beforeTs` (a sender retries a transaction for hours, not weeks). */
export async function pruneInboundTransactions(db: Db, beforeTs: number): Promise<number> {
  return db('federation_inbound_txns').where('received_ts', '<', beforeTs).delete();
}
