import type { Db } from '../database.js';
import { chunks } from '../../util/chunks.js';

// Reads for MSC4186 room lists: a user's memberships with their senders, bump stamps and current state ids
// of many rooms, each in one query per chunk of rooms.

const CHUNK = 400;


export interface SlidingMembership {
  roomId: string;
  membership: string;
  eventId: string;
  streamOrdering: number;
  /** Who sent the membership event: a leave sent by someone else is a kick. */
  sender: string;
}

interface MembershipDbRow {
  room_id: string;
  membership: string;
  event_id: string;
  stream_ordering: number | string;
  sender: string;
}

const toMembership = (r: MembershipDbRow): SlidingMembership => ({
  roomId: r.room_id,
  membership: r.membership,
  eventId: r.event_id,
  streamOrdering: Number(r.stream_ordering),
  sender: r.sender,
});

/** The user's current membership in every room they have one in (with `after`: only those changed since). */
export async function membershipsWithSender(db: Db, userId: string, after?: number): Promise<SlidingMembership[]> {
  const q = db('current_state as cs')
    .join('events as e', 'e.event_id', 'cs.event_id')
    .where({ 'cs.type': 'm.room.member', 'cs.state_key': userId });
  if (after !== undefined) q.andWhere('cs.stream_ordering', '>', after);
  const rows: MembershipDbRow[] = await q.select('cs.room_id', 'cs.membership', 'cs.event_id', 'cs.stream_ordering', 'e.sender');
  return rows.map(toMembership);
}

/** The user's last membership event in a room at or before a stream position. */
export async function membershipWithSenderAt(db: Db, roomId: string, userId: string, stream: number): Promise<SlidingMembership | undefined> {
  const row: MembershipDbRow | undefined = await db('events')
    .where({ room_id: roomId, type: 'm.room.member', state_key: userId, outlier: false })
    .whereNull('rejected_reason')
    .andWhere('stream_ordering', '<=', stream)
    .orderBy('stream_ordering', 'desc')
    .first('room_id', 'membership', 'event_id', 'stream_ordering', 'sender');
  return row ? toMembership(row) : undefined;
}

/** Per room, the newest stream position of an event of one of `types` at or before `upTo`. */
export async function latestOfTypes(db: Db, roomIds: readonly string[], types: readonly string[], upTo: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const part of chunks(roomIds, CHUNK)) {
    const rows: Array<{ room_id: string; s: number | string }> = await db('events')
      .whereIn('room_id', part)
      .whereIn('type', [...types])
      .andWhere('stream_ordering', '<=', upTo)
      .andWhere('stream_ordering', '>', 0)
      .andWhere({ outlier: false })
      .whereNull('rejected_reason')
      .groupBy('room_id')
      .select('room_id', db.raw('MAX(stream_ordering) as s'));
    for (const r of rows) out.set(r.room_id, Number(r.s));
  }
  return out;
}

/** Per room, the newest event of one of `types` in (from, to] — a range scan of the stream. */
export async function latestOfTypesInRange(db: Db, types: readonly string[], fromExclusive: number, toInclusive: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (fromExclusive >= toInclusive) return out;
  const rows: Array<{ room_id: string; stream_ordering: number | string }> = await db('events')
    .where('stream_ordering', '>', fromExclusive)
    .andWhere('stream_ordering', '<=', toInclusive)
    .whereIn('type', [...types])
    .andWhere({ outlier: false })
    .whereNull('rejected_reason')
    .select('room_id', 'stream_ordering');
  for (const r of rows) out.set(r.room_id, Math.max(out.get(r.room_id) ?? 0, Number(r.stream_ordering)));
  return out;
}

export interface CurrentStateRef {
  roomId: string;
  type: string;
  stateKey: string;
  eventId: string;
}

/** Current state event ids of `types` in many rooms (state key '' only unless `anyKey`). */
export async function currentStateOfTypes(db: Db, roomIds: readonly string[], types: readonly string[], anyKey = false): Promise<CurrentStateRef[]> {
  const out: CurrentStateRef[] = [];
  for (const part of chunks(roomIds, CHUNK)) {
    const q = db('current_state').whereIn('room_id', part).whereIn('type', [...types]);
    if (!anyKey) q.andWhere('state_key', '');
    const rows: Array<{ room_id: string; type: string; state_key: string; event_id: string }> = await q.select('room_id', 'type', 'state_key', 'event_id');
    for (const r of rows) out.push({ roomId: r.room_id, type: r.type, stateKey: r.state_key, eventId: r.event_id });
  }
  return out;
}
