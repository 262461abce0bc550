import type { Pdu } from '../../types/pdu.js';
import type { Db } from '../database.js';
import { expiriesOf, insertExpiries } from './eventExpiry.js';

export interface EventRow {
  stream_ordering: number;
  event_id: string;
  room_id: string;
  type: string;
  state_key: string | null;
  sender: string;
  depth: number;
  origin_server_ts: number;
  membership: string | null;
  json: string;
  state_before: number | null;
  state_after: number | null;
  outlier: boolean | number;
  rejected_reason: string | null;
  redacted_by: string | null;
  sender_device: string | null;
  txn_id: string | null;
  replaces_state: string | null;
}

/** A stored event with its parsed PDU and the bookkeeping columns. */
export interface StoredEvent {
  eventId: string;
  streamOrdering: number;
  depth: number;
  pdu: Pdu;
  stateBefore: number | null;
  stateAfter: number | null;
  redactedBy: string | null;
  senderDevice: string | null;
  txnId: string | null;
  replacesState: string | null;
  rejected: boolean;
  outlier: boolean;
}

export function toStoredEvent(row: EventRow): StoredEvent {
  return {
    eventId: row.event_id,
    streamOrdering: Number(row.stream_ordering),
    depth: Number(row.depth),
    pdu: JSON.parse(row.json) as Pdu,
    stateBefore: row.state_before === null ? null : Number(row.state_before),
    stateAfter: row.state_after === null ? null : Number(row.state_after),
    redactedBy: row.redacted_by,
    senderDevice: row.sender_device,
    txnId: row.txn_id,
    replacesState: row.replaces_state,
    rejected: row.rejected_reason !== null,
    outlier: Boolean(row.outlier),
  };
}

export interface NewEvent {
  eventId: string;
  pdu: Pdu;
  stateBefore: number | null;
  stateAfter: number | null;
  senderDevice?: string;
  txnId?: string;
  replacesState?: string;
  outlier?: boolean;
  rejectedReason?: string;
}

function eventRow(e: NewEvent & { streamOrdering: number }): Record<string, unknown> {
  const pdu = e.pdu;
  const membership = pdu.type === 'm.room.member' && typeof pdu.content.membership === 'string' ? pdu.content.membership : null;
  return {
    stream_ordering: e.streamOrdering,
    event_id: e.eventId,
    // v12 create events carry no room_id: the room id is `!` + their event id without the `$`.
    room_id: pdu.room_id ?? (pdu.type === 'm.room.create' ? '!' + e.eventId.slice(1) : undefined),
    type: pdu.type,
    state_key: pdu.state_key ?? null,
    sender: pdu.sender,
    depth: pdu.depth,
    origin_server_ts: pdu.origin_server_ts,
    membership,
    json: JSON.stringify(pdu),
    state_before: e.stateBefore,
    state_after: e.stateAfter,
    outlier: e.outlier ?? false,
    rejected_reason: e.rejectedReason ?? null,
    sender_device: e.senderDevice ?? null,
    txn_id: e.txnId ?? null,
    replaces_state: e.replacesState ?? null,
  };
}

/** Inserts events with stream positions the caller allocated under the stream-write lock. */
export async function insertEvents(db: Db, events: ReadonlyArray<NewEvent & { streamOrdering: number }>): Promise<void> {
  for (let i = 0; i < events.length; i += 100) await db('events').insert(events.slice(i, i + 100).map(eventRow));
  // In the same transaction: a self-destructing message must never outlive its time because of a crash.
  await insertExpiries(db, expiriesOf(events.filter((e) => !e.rejectedReason)));
}

const CHUNK = 500;

export async function getEvents(db: Db, eventIds: readonly string[]): Promise<Map<string, StoredEvent>> {
  const out = new Map<string, StoredEvent>();
  for (let i = 0; i < eventIds.length; i += CHUNK) {
    const rows: EventRow[] = await db('events').whereIn('event_id', eventIds.slice(i, i + CHUNK));
    for (const row of rows) out.set(row.event_id, toStoredEvent(row));
  }
  return out;
}

export async function getEvent(db: Db, eventId: string): Promise<StoredEvent | undefined> {
  const row: EventRow | undefined = await db('events').where({ event_id: eventId }).first();
  return row ? toStoredEvent(row) : undefined;
}

export async function maxStreamOrdering(db: Db): Promise<number> {
  const row = await db('events').max({ m: 'stream_ordering' }).first();
  return Number(row?.m ?? 0);
}

export async function getForwardExtremities(db: Db, roomId: string): Promise<Array<{ eventId: string; depth: number }>> {
  const rows = await db('forward_extremities as f')
    .join('events as e', 'e.event_id', 'f.event_id')
    .where('f.room_id', roomId)
    .select('f.event_id', 'e.depth');
  return rows.map((r: { event_id: string; depth: number }) => ({ eventId: r.event_id, depth: Number(r.depth) }));
}

export async function updateForwardExtremities(db: Db, roomId: string, removed: readonly string[], added: readonly string[]): Promise<void> {
  // The common case, one extremity replaced by the newest event, is a single statement.
  if (removed.length === 1 && added.length === 1) {
    const n = await db('forward_extremities').where({ room_id: roomId, event_id: removed[0] }).update({ event_id: added[0] });
    if (n === 1) return;
  } else if (removed.length) {
    await db('forward_extremities').where('room_id', roomId).whereIn('event_id', removed).delete();
  }
  if (added.length) {
    await db('forward_extremities')
      .insert(added.map((eventId) => ({ room_id: roomId, event_id: eventId })))
      .onConflict(['room_id', 'event_id'])
      .ignore();
  }
}

export async function markRedacted(db: Db, redactionId: string, targetId: string): Promise<void> {
  await db('redactions').insert({ event_id: redactionId, redacts: targetId }).onConflict('event_id').ignore();
  await db('events').where({ event_id: targetId }).whereNull('redacted_by').update({ redacted_by: redactionId });
}

/** Events in a room by stream position, newest first, strictly inside (from, to]. */
export async function roomEventsInStreamRange(
  db: Db,
  roomId: string,
  fromExclusive: number,
  toInclusive: number,
  limit: number,
): Promise<StoredEvent[]> {
  const rows: EventRow[] = await db('events')
    .where('room_id', roomId)
    .andWhere('stream_ordering', '>', fromExclusive)
    .andWhere('stream_ordering', '<=', toInclusive)
    .andWhere('outlier', false)
    .whereNull('rejected_reason')
    .orderBy('stream_ordering', 'desc')
    .limit(limit);
  return rows.map(toStoredEvent);
}

/** Events of several rooms by stream position, oldest first, strictly inside (from, to] (the legacy event stream). */
export async function roomsEventsInStreamRange(
  db: Db,
  roomIds: readonly string[],
  fromExclusive: number,
  toInclusive: number,
  limit: number,
): Promise<StoredEvent[]> {
  if (roomIds.length === 0 || fromExclusive >= toInclusive || limit <= 0) return [];
  const rows: EventRow[] = [];
  // SQLite caps bound parameters: many rooms are read in chunks, each its oldest `limit`, merged below.
  for (let i = 0; i < roomIds.length; i += 400) {
    rows.push(
      ...(await db('events')
        .whereIn('room_id', roomIds.slice(i, i + 400))
        .andWhere('stream_ordering', '>', fromExclusive)
        .andWhere('stream_ordering', '<=', toInclusive)
        .andWhere('outlier', false)
        .whereNull('rejected_reason')
        .orderBy('stream_ordering', 'asc')
        .limit(limit)),
    );
  }
  const events = rows.map(toStoredEvent);
  if (roomIds.length > 400) events.sort((a, b) => a.streamOrdering - b.streamOrdering);
  return events.slice(0, limit);
}

/** Topological page of a room's events: backwards (newest first) or forwards from a (depth, stream) point. */
export async function roomEventsTopological(
  db: Db,
  roomId: string,
  from: { depth: number; stream: number },
  dir: 'b' | 'f',
  limit: number,
  to?: { depth: number; stream: number },
): Promise<StoredEvent[]> {
  const q = db('events').where('room_id', roomId).andWhere('outlier', false).whereNull('rejected_reason');
  if (dir === 'b') {
    q.andWhere((w) => w.where('depth', '<', from.depth).orWhere((x) => x.where('depth', from.depth).andWhere('stream_ordering', '<=', from.stream)));
    if (to) q.andWhere((w) => w.where('depth', '>', to.depth).orWhere((x) => x.where('depth', to.depth).andWhere('stream_ordering', '>', to.stream)));
    q.orderBy([{ column: 'depth', order: 'desc' }, { column: 'stream_ordering', order: 'desc' }]);
  } else {
    q.andWhere((w) => w.where('depth', '>', from.depth).orWhere((x) => x.where('depth', from.depth).andWhere('stream_ordering', '>', from.stream)));
    if (to) q.andWhere((w) => w.where('depth', '<', to.depth).orWhere((x) => x.where('depth', to.depth).andWhere('stream_ordering', '<=', to.stream)));
    q.orderBy([{ column: 'depth', order: 'asc' }, { column: 'stream_ordering', order: 'asc' }]);
  }
  const rows: EventRow[] = await q.limit(limit);
  return rows.map(toStoredEvent);
}

/** A room's timeline events (not outliers, not rejected) with depth in [lo, hi], deepest first, at most `limit`. */
export async function roomEventsInDepthRange(db: Db, roomId: string, lo: number, hi: number, limit: number): Promise<StoredEvent[]> {
  const rows: EventRow[] = await db('events')
    .where('room_id', roomId)
    .andWhere('outlier', false)
    .whereNull('rejected_reason')
    .andWhere('depth', '>=', lo)
    .andWhere('depth', '<=', hi)
    .orderBy([{ column: 'depth', order: 'desc' }, { column: 'stream_ordering', order: 'desc' }])
    .limit(limit);
  return rows.map(toStoredEvent);
}

/** The newest event of a room at or before a stream position. */
export async function lastRoomEventAtStream(db: Db, roomId: string, stream: number): Promise<StoredEvent | undefined> {
  const row: EventRow | undefined = await db('events')
    .where('room_id', roomId)
    .andWhere('stream_ordering', '<=', stream)
    .andWhere('outlier', false)
    .whereNull('rejected_reason')
    .orderBy('stream_ordering', 'desc')
    .first();
  return row ? toStoredEvent(row) : undefined;
}

/** The event whose origin_server_ts is closest to ts in the given direction. */
export async function eventIdByTimestamp(db: Db, roomId: string, ts: number, dir: 'f' | 'b'): Promise<StoredEvent | undefined> {
  const q = db('events').where('room_id', roomId).andWhere('outlier', false).whereNull('rejected_reason');
  if (dir === 'f') q.andWhere('origin_server_ts', '>=', ts).orderBy([{ column: 'origin_server_ts', order: 'asc' }, { column: 'stream_ordering', order: 'asc' }]);
  else q.andWhere('origin_server_ts', '<=', ts).orderBy([{ column: 'origin_server_ts', order: 'desc' }, { column: 'stream_ordering', order: 'desc' }]);
  const row: EventRow | undefined = await q.first();
  return row ? toStoredEvent(row) : undefined;
}

export interface TransactionKey {
  sender: string;
  senderDevice: string;
  roomId: string;
  type: string;
  txnId: string;
}

export function transactionKeyString(k: TransactionKey): string {
  return JSON.stringify([k.sender, k.senderDevice, k.roomId, k.type, k.txnId]);
}

/** Events already sent under these transaction keys, keyed by transactionKeyString. */
export async function eventIdsForTransactions(db: Db, keys: readonly TransactionKey[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!keys.length) return out;
  const rows: Array<{ event_id: string; sender: string; sender_device: string; room_id: string; type: string; txn_id: string }> = await db('events')
    .whereIn('txn_id', [...new Set(keys.map((k) => k.txnId))])
    .whereIn('sender', [...new Set(keys.map((k) => k.sender))])
    .select('event_id', 'sender', 'sender_device', 'room_id', 'type', 'txn_id');
  for (const r of rows) {
    out.set(transactionKeyString({ sender: r.sender, senderDevice: r.sender_device, roomId: r.room_id, type: r.type, txnId: r.txn_id }), r.event_id);
  }
  return out;
}

/** Removes one stored event row (an outlier about to be stored again in the timeline). */
export async function deleteEventRow(db: Db, eventId: string): Promise<void> {
  await db('events').where({ event_id: eventId }).delete();
}
