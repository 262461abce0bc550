import type { Db } from '../database.js';

/** The application service transaction queue (migrations/0014_appservice_queue.ts). */

export type AppserviceItemKind = 'event' | 'ephemeral' | 'to_device' | 'device_list';

export interface AppserviceItem {
  id: number;
  serviceId: string;
  kind: AppserviceItemKind;
  payload: unknown;
  queuedTs: number;
}

export interface AppserviceState {
  serviceId: string;
  retryCount: number;
  nextAttemptTs: number;
  pendingTxnId: string | null;
  lastSuccessTs: number | null;
}

interface ItemRow {
  id: number | string;
  service_id: string;
  kind: AppserviceItemKind;
  payload: string;
  queued_ts: number | string;
}

const toItem = (r: ItemRow): AppserviceItem => ({
  id: Number(r.id),
  serviceId: r.service_id,
  kind: r.kind,
  payload: JSON.parse(r.payload),
  queuedTs: Number(r.queued_ts),
});

export async function enqueueAppservice(
  db: Db,
  items: ReadonlyArray<{ serviceId: string; kind: AppserviceItemKind; payload: unknown; queuedTs: number }>,
): Promise<void> {
  const rows = items.map((i) => ({ service_id: i.serviceId, kind: i.kind, payload: JSON.stringify(i.payload), queued_ts: i.queuedTs }));
  for (let i = 0; i < rows.length; i += 200) await db('appservice_queue').insert(rows.slice(i, i + 200));
}

/** Services with queued items. */
export async function servicesWithWork(db: Db): Promise<string[]> {
  const rows: Array<{ service_id: string }> = await db('appservice_queue').distinct('service_id');
  return rows.map((r) => r.service_id);
}

export async function getAppserviceState(db: Db, serviceId: string): Promise<AppserviceState> {
  const row = await db('appservice_state').where({ service_id: serviceId }).first();
  if (!row) return { serviceId, retryCount: 0, nextAttemptTs: 0, pendingTxnId: null, lastSuccessTs: null };
  return {
    serviceId,
    retryCount: Number(row.retry_count),
    nextAttemptTs: Number(row.next_attempt_ts),
    pendingTxnId: row.pending_txn_id ?? null,
    lastSuccessTs: row.last_success_ts === null || row.last_success_ts === undefined ? null : Number(row.last_success_ts),
  };
}

export async function saveAppserviceState(db: Db, state: AppserviceState): Promise<void> {
  await db('appservice_state')
    .insert({
      service_id: state.serviceId,
      retry_count: state.retryCount,
      next_attempt_ts: state.nextAttemptTs,
      pending_txn_id: state.pendingTxnId,
      last_success_ts: state.lastSuccessTs,
    })
    .onConflict('service_id')
    .merge(['retry_count', 'next_attempt_ts', 'pending_txn_id', 'last_success_ts']);
}

/** The items of a transaction already formed (a retry resends exactly these under the same txnId). */
export async function appserviceTransactionItems(db: Db, serviceId: string, txnId: string): Promise<AppserviceItem[]> {
  const rows: ItemRow[] = await db('appservice_queue').where({ service_id: serviceId, txn_id: txnId }).orderBy('id');
  return rows.map(toItem);
}

/**
 * Forms a new transaction: the oldest unassigned items of each kind (at most `limits[kind]`) get a txnId,
 * the decimal id of the oldest of them. That id grows with every transaction (it is the oldest item not yet
 * sent, and item ids are never reused), and is all digits, as Synapse's counter (services such as SyTest's
 * stub answer only those). Returns the items in queue order, or undefined when nothing waits.
 */
export async function claimAppserviceTransaction(
  db: Db,
  serviceId: string,
  limits: Record<AppserviceItemKind, number>,
): Promise<{ txnId: string; items: AppserviceItem[] } | undefined> {
  const ids: number[] = [];
  for (const kind of Object.keys(limits) as AppserviceItemKind[]) {
    const rows: Array<{ id: number | string }> = await db('appservice_queue')
      .where({ service_id: serviceId, kind })
      .whereNull('txn_id')
      .orderBy('id')
      .limit(limits[kind])
      .select('id');
    for (const r of rows) ids.push(Number(r.id));
  }
  if (!ids.length) return undefined;
  const txnId = String(Math.min(...ids));
  for (let i = 0; i < ids.length; i += 500) await db('appservice_queue').whereIn('id', ids.slice(i, i + 500)).update({ txn_id: txnId });
  return { txnId, items: await appserviceTransactionItems(db, serviceId, txnId) };
}

export async function deleteAppserviceTransaction(db: Db, serviceId: string, txnId: string): Promise<void> {
  await db('appservice_queue').where({ service_id: serviceId, txn_id: txnId }).delete();
}

export async function appserviceQueuedCount(db: Db, serviceId: string): Promise<number> {
  const row = await db('appservice_queue').where({ service_id: serviceId }).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}
