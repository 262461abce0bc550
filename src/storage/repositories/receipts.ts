import type { Db } from '../database.js';
import { chunks } from '../../util/chunks.js';

// Read receipts: one row per (room, user, receipt type, thread); thread '' is an unthreaded receipt.

export interface ReceiptRow {
  streamId: number;
  roomId: string;
  userId: string;
  receiptType: string;
  /** undefined for an unthreaded receipt. */
  threadId: string | undefined;
  eventId: string;
  eventStream: number;
  ts: number;
}

interface Row {
  stream_id: number | string;
  room_id: string;
  user_id: string;
  receipt_type: string;
  thread_id: string;
  event_id: string;
  event_stream: number | string;
  ts: number | string;
}

const COLUMNS = ['stream_id', 'room_id', 'user_id', 'receipt_type', 'thread_id', 'event_id', 'event_stream', 'ts'];

const toReceipt = (r: Row): ReceiptRow => ({
  streamId: Number(r.stream_id),
  roomId: r.room_id,
  userId: r.user_id,
  receiptType: r.receipt_type,
  threadId: r.thread_id === '' ? undefined : r.thread_id,
  eventId: r.event_id,
  eventStream: Number(r.event_stream),
  ts: Number(r.ts),
});

const CHUNK = 400;


/**
 * Stores a receipt unless the user already has one of this kind at a later event (receipts only move
 * forwards). Returns the new stream position, or undefined when nothing changed. Call inside a stream write.
 */
export async function putReceipt(
  db: Db,
  r: { roomId: string; userId: string; receiptType: string; threadId: string | undefined; eventId: string; eventStream: number; ts: number },
): Promise<number | undefined> {
  const key = { room_id: r.roomId, user_id: r.userId, receipt_type: r.receiptType, thread_id: r.threadId ?? '' };
  const existing = await db('receipts').where(key).first('event_id', 'event_stream');
  if (existing && (existing.event_id === r.eventId || Number(existing.event_stream) > r.eventStream)) return undefined;
  // Delete + insert gives the receipt a new stream position (autoincrement ids are never reused).
  if (existing) await db('receipts').where(key).delete();
  const [row] = await db('receipts')
    .insert({ ...key, event_id: r.eventId, event_stream: r.eventStream, ts: r.ts })
    .returning('stream_id');
  return Number(typeof row === 'object' ? (row as { stream_id: number }).stream_id : row);
}

/** Receipts in the given rooms up to `toInclusive` (the newest per key, as stored). */
export async function receiptsInRooms(db: Db, roomIds: readonly string[], toInclusive: number): Promise<ReceiptRow[]> {
  const out: ReceiptRow[] = [];
  for (const part of chunks(roomIds, CHUNK)) {
    const rows: Row[] = await db('receipts')
      .whereIn('room_id', part as string[])
      .andWhere('stream_id', '<=', toInclusive)
      .orderBy('stream_id')
      .select(COLUMNS);
    out.push(...rows.map(toReceipt));
  }
  return out;
}

/** Receipts that changed in (fromExclusive, toInclusive], in every room. */
export async function changedReceipts(db: Db, fromExclusive: number, toInclusive: number): Promise<ReceiptRow[]> {
  const rows: Row[] = await db('receipts')
    .where('stream_id', '>', fromExclusive)
    .andWhere('stream_id', '<=', toInclusive)
    .orderBy('stream_id')
    .select(COLUMNS);
  return rows.map(toReceipt);
}

export async function maxReceiptStreamId(db: Db): Promise<number> {
  const row = await db('receipts').max({ m: 'stream_id' }).first();
  return Number(row?.m ?? 0);
}

/** Receipt types that mark the user's read position (m.fully_read is account data, not a receipt). */
const READ_TYPES = ['m.read', 'm.read.private'];

/**
 * Per room, the stream ordering of the event the user's newest unthreaded (or main-timeline) m.read /
 * m.read.private receipt points at; rooms without one are missing. Shaped as push's `ReadPositions`.
 */
/**
 * How far the user has read in each room: their latest m.read / m.read.private receipt on the main
 * timeline, or their own latest event if newer (sending a message implies having read up to it).
 */
export async function readPositions(db: Db, userId: string, roomIds: readonly string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const part of chunks(roomIds, CHUNK)) {
    const own: Array<{ room_id: string; pos: number | string | null }> = await db('events')
      .where('sender', userId)
      .whereIn('room_id', part as string[])
      .groupBy('room_id')
      .select('room_id')
      .max({ pos: 'stream_ordering' });
    for (const r of own) if (r.pos !== null) out.set(r.room_id, Number(r.pos));
    const rows: Array<{ room_id: string; pos: number | string | null }> = await db('receipts')
      .where('user_id', userId)
      .whereIn('receipt_type', READ_TYPES)
      .whereIn('thread_id', ['', 'main'])
      .whereIn('room_id', part as string[])
      .groupBy('room_id')
      .select('room_id')
      .max({ pos: 'event_stream' });
    for (const r of rows) if (r.pos !== null) out.set(r.room_id, Math.max(out.get(r.room_id) ?? 0, Number(r.pos)));
  }
  return out;
}
