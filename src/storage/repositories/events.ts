import type { Pdu } from '../../types/pdu.js';
import type { Db } from '../database.js';

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

export async function insertEvent(db: Db, e: NewEvent): Promise<number> {
  const pdu = e.pdu;
  const membership = pdu.type === 'm.room.member' && typeof pdu.content.membership === 'string' ? pdu.content.membership : null;
  const [row] = await db('events')
    .insert({
      event_id: e.eventId,
      room_id: pdu.room_id,
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
    })
    .returning('stream_ordering');
  return Number(typeof row === 'object' ? row.stream_ordering : row);
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

export async function replaceForwardExtremities(db: Db, roomId: string, removed: readonly string[], added: string): Promise<void> {
  if (removed.length) await db('forward_extremities').where('room_id', roomId).whereIn('event_id', removed).delete();
  await db('forward_extremities').insert({ room_id: roomId, event_id: added }).onConflict(['room_id', 'event_id']).ignore();
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

/** The event a device already sent with this transaction id into this room, if any. */
export async function eventIdForTransaction(
  db: Db,
  key: { sender: string; senderDevice: string; roomId: string; type: string; txnId: string },
): Promise<string | undefined> {
  const row = await db('events')
    .where({ sender: key.sender, txn_id: key.txnId, sender_device: key.senderDevice, room_id: key.roomId, type: key.type })
    .first('event_id');
  return row?.event_id;
}
