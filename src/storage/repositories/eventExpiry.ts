import type { Db } from '../database.js';
import type { NewEvent } from './events.js';

/** MSC2228: the content key a sender sets to have their message pruned at that time (ms since the epoch). */
export const SELF_DESTRUCT_KEY = 'org.matrix.self_destruct_after';

export interface ExpiryRow {
  eventId: string;
  roomId: string;
  expiryTs: number;
}

/** Events of `events` that ask to be pruned: non-state events whose content names a time as an integer. */
export function expiriesOf(events: ReadonlyArray<Pick<NewEvent, 'eventId' | 'pdu'>>): ExpiryRow[] {
  const out: ExpiryRow[] = [];
  for (const e of events) {
    const content = e.pdu.content as Record<string, unknown> | undefined;
    if (e.pdu.state_key !== undefined || !content || typeof e.pdu.room_id !== 'string') continue;
    const at = Object.prototype.hasOwnProperty.call(content, SELF_DESTRUCT_KEY) ? content[SELF_DESTRUCT_KEY] : undefined;
    if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) continue;
    out.push({ eventId: e.eventId, roomId: e.pdu.room_id, expiryTs: at });
  }
  return out;
}

export async function insertExpiries(db: Db, rows: readonly ExpiryRow[]): Promise<void> {
  if (!rows.length) return;
  await db('event_expiry')
    .insert(rows.map((r) => ({ event_id: r.eventId, room_id: r.roomId, expiry_ts: r.expiryTs })))
    .onConflict('event_id')
    .ignore();
}

export async function dueExpiries(db: Db, now: number, limit: number): Promise<ExpiryRow[]> {
  const rows: Array<{ event_id: string; room_id: string; expiry_ts: number | string }> = await db('event_expiry')
    .where('expiry_ts', '<=', now)
    .orderBy('expiry_ts')
    .limit(limit);
  return rows.map((r) => ({ eventId: r.event_id, roomId: r.room_id, expiryTs: Number(r.expiry_ts) }));
}

export async function nextExpiryTs(db: Db): Promise<number | undefined> {
  const row = await db('event_expiry').min({ m: 'expiry_ts' }).first();
  return row?.m === null || row?.m === undefined ? undefined : Number(row.m);
}

export async function deleteExpiries(db: Db, eventIds: readonly string[]): Promise<void> {
  if (eventIds.length) await db('event_expiry').whereIn('event_id', eventIds).delete();
}
