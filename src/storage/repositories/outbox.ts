import type { Db } from '../database.js';

/** The outbound federation queue (migrations/0011_federation_outbox.ts). */

export type OutboxKind = 'pdu' | 'edu';

export interface OutboxItem {
  id: number;
  destination: string;
  kind: OutboxKind;
  payload: unknown;
  queuedTs: number;
}

export interface DestinationState {
  destination: string;
  retryCount: number;
  nextAttemptTs: number;
  pendingTxnId: string | null;
  lastSuccessTs: number | null;
}

interface OutboxRow {
  id: number | string;
  destination: string;
  kind: OutboxKind;
  payload: string;
  queued_ts: number | string;
}

const toItem = (r: OutboxRow): OutboxItem => ({
  id: Number(r.id),
  destination: r.destination,
  kind: r.kind,
  payload: JSON.parse(r.payload),
  queuedTs: Number(r.queued_ts),
});

export async function enqueueOutbox(
  db: Db,
  items: ReadonlyArray<{ destination: string; kind: OutboxKind; payload: unknown; queuedTs: number }>,
): Promise<void> {
  const rows = items.map((i) => ({ destination: i.destination, kind: i.kind, payload: JSON.stringify(i.payload), queued_ts: i.queuedTs }));
  for (let i = 0; i < rows.length; i += 200) await db('federation_outbox').insert(rows.slice(i, i + 200));
}

/** Destinations with queued items, with their delivery state (defaults when never attempted). */
export async function destinationsWithWork(db: Db): Promise<DestinationState[]> {
  const rows: Array<{ destination: string }> = await db('federation_outbox').distinct('destination');
  const out: DestinationState[] = [];
  for (const { destination } of rows) out.push(await getDestination(db, destination));
  return out;
}

export async function getDestination(db: Db, destination: string): Promise<DestinationState> {
  const row = await db('federation_destinations').where({ destination }).first();
  if (!row) return { destination, retryCount: 0, nextAttemptTs: 0, pendingTxnId: null, lastSuccessTs: null };
  return {
    destination,
    retryCount: Number(row.retry_count),
    nextAttemptTs: Number(row.next_attempt_ts),
    pendingTxnId: row.pending_txn_id ?? null,
    lastSuccessTs: row.last_success_ts === null || row.last_success_ts === undefined ? null : Number(row.last_success_ts),
  };
}

export async function saveDestination(db: Db, state: DestinationState): Promise<void> {
  await db('federation_destinations')
    .insert({
      destination: state.destination,
      retry_count: state.retryCount,
      next_attempt_ts: state.nextAttemptTs,
      pending_txn_id: state.pendingTxnId,
      last_success_ts: state.lastSuccessTs,
    })
    .onConflict('destination')
    .merge(['retry_count', 'next_attempt_ts', 'pending_txn_id', 'last_success_ts']);
}

/** The items of a transaction already formed (for a retry: the same items under the same txnId). */
export async function transactionItems(db: Db, destination: string, txnId: string): Promise<OutboxItem[]> {
  const rows: OutboxRow[] = await db('federation_outbox').where({ destination, txn_id: txnId }).orderBy('id');
  return rows.map(toItem);
}

/**
 * Forms a new transaction: the oldest unassigned items of each kind (at most `maxPdus` PDUs and `maxEdus`
 * EDUs) get `txnId`. Returns them in queue order; [] when nothing waits.
 */
export async function claimTransaction(db: Db, destination: string, txnId: string, maxPdus: number, maxEdus: number): Promise<OutboxItem[]> {
  const pick = (kind: OutboxKind, limit: number) =>
    db('federation_outbox').where({ destination, kind }).whereNull('txn_id').orderBy('id').limit(limit).select('id');
  const ids = [...(await pick('pdu', maxPdus)), ...(await pick('edu', maxEdus))].map((r: { id: number | string }) => Number(r.id));
  if (!ids.length) return [];
  for (let i = 0; i < ids.length; i += 500) await db('federation_outbox').whereIn('id', ids.slice(i, i + 500)).update({ txn_id: txnId });
  return transactionItems(db, destination, txnId);
}

/** Drops a delivered transaction's items. */
export async function deleteTransaction(db: Db, destination: string, txnId: string): Promise<void> {
  await db('federation_outbox').where({ destination, txn_id: txnId }).delete();
}

export async function queuedCount(db: Db, destination: string): Promise<number> {
  const row = await db('federation_outbox').where({ destination }).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}
