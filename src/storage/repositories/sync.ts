import type { Db } from '../database.js';
import { chunks } from '../../util/chunks.js';

// Batched reads for /sync: one query for many rooms wherever that is easy, so an initial sync of a user
// in hundreds of rooms costs a handful of round trips, not several per room.

const CHUNK = 400;


async function rawRows<T>(db: Db, sql: string, bindings: readonly unknown[]): Promise<T[]> {
  const res = await db.raw(sql, bindings as never);
  // sqlite3 answers with the rows, pg with a result object.
  return (Array.isArray(res) ? res : (res as { rows: T[] }).rows) as T[];
}

export interface MembershipRow {
  roomId: string;
  membership: string;
  eventId: string;
  streamOrdering: number;
}

/** The user's current membership in every room they have one in (one query). */
export async function userMemberships(db: Db, userId: string): Promise<MembershipRow[]> {
  const rows: Array<{ room_id: string; membership: string; event_id: string; stream_ordering: number }> = await db('current_state')
    .where({ type: 'm.room.member', state_key: userId })
    .select('room_id', 'membership', 'event_id', 'stream_ordering');
  return rows.map((r) => ({ roomId: r.room_id, membership: r.membership, eventId: r.event_id, streamOrdering: Number(r.stream_ordering) }));
}

/**
 * The user's memberships that matter to an incremental sync over (from, to], in one query: rooms with
 * events in the range, and rooms whose membership event is newer than `from`.
 */
export async function membershipsTouchedInRange(db: Db, userId: string, fromExclusive: number, toInclusive: number): Promise<MembershipRow[]> {
  const rows: Array<{ room_id: string; membership: string; event_id: string; stream_ordering: number }> = await db('current_state')
    .where({ type: 'm.room.member', state_key: userId })
    .andWhere((w) =>
      w
        .where('stream_ordering', '>', fromExclusive)
        .orWhereIn('room_id', db('events').where('stream_ordering', '>', fromExclusive).andWhere('stream_ordering', '<=', toInclusive).distinct('room_id')),
    )
    .select('room_id', 'membership', 'event_id', 'stream_ordering');
  return rows.map((r) => ({ roomId: r.room_id, membership: r.membership, eventId: r.event_id, streamOrdering: Number(r.stream_ordering) }));
}

/** The user's last membership event in a room at or before a stream position. */
export async function membershipAtStream(db: Db, roomId: string, userId: string, stream: number): Promise<MembershipRow | undefined> {
  const row = await db('events')
    .where({ room_id: roomId, type: 'm.room.member', state_key: userId, outlier: false })
    .whereNull('rejected_reason')
    .andWhere('stream_ordering', '<=', stream)
    .orderBy('stream_ordering', 'desc')
    .first('room_id', 'membership', 'event_id', 'stream_ordering');
  return row ? { roomId: row.room_id, membership: row.membership, eventId: row.event_id, streamOrdering: Number(row.stream_ordering) } : undefined;
}

/** Rooms with at least one event in (from, to] — a range scan of the stream, narrow for incremental syncs. */
export async function roomsWithEventsInRange(db: Db, fromExclusive: number, toInclusive: number): Promise<Set<string>> {
  if (fromExclusive >= toInclusive) return new Set();
  const rows: Array<{ room_id: string }> = await db('events')
    .where('stream_ordering', '>', fromExclusive)
    .andWhere('stream_ordering', '<=', toInclusive)
    .distinct('room_id');
  return new Set(rows.map((r) => r.room_id));
}

export interface RoomRange {
  roomId: string;
  /** Exclusive lower bound. */
  after: number;
  /** Inclusive upper bound. */
  upTo: number;
}

/**
 * The newest `limit` event ids of each room inside its range, newest first — one UNION ALL query per
 * chunk of rooms, each arm walking the (room_id, stream_ordering) index backwards.
 */
export async function latestEventIdsPerRoom(db: Db, ranges: readonly RoomRange[], limit: number): Promise<Map<string, Array<{ eventId: string; streamOrdering: number }>>> {
  const out = new Map<string, Array<{ eventId: string; streamOrdering: number }>>();
  for (const r of ranges) out.set(r.roomId, []);
  if (limit <= 0) return out;
  for (const part of chunks(ranges, 100)) {
    const arms: string[] = [];
    const bindings: unknown[] = [];
    part.forEach((r, i) => {
      arms.push(
        `SELECT * FROM (SELECT event_id, room_id, stream_ordering FROM events WHERE room_id = ? AND stream_ordering > ? AND stream_ordering <= ? AND outlier = ? AND rejected_reason IS NULL ORDER BY stream_ordering DESC LIMIT ?) AS t${i}`,
      );
      bindings.push(r.roomId, r.after, r.upTo, false, limit);
    });
    const rows = await rawRows<{ event_id: string; room_id: string; stream_ordering: number }>(db, arms.join(' UNION ALL '), bindings);
    for (const row of rows) out.get(row.room_id)?.push({ eventId: row.event_id, streamOrdering: Number(row.stream_ordering) });
  }
  for (const list of out.values()) list.sort((a, b) => b.streamOrdering - a.streamOrdering);
  return out;
}

/** Joined and invited member counts per room. */
export async function memberCounts(db: Db, roomIds: readonly string[]): Promise<Map<string, { joined: number; invited: number }>> {
  const out = new Map<string, { joined: number; invited: number }>();
  for (const id of roomIds) out.set(id, { joined: 0, invited: 0 });
  for (const part of chunks(roomIds, CHUNK)) {
    const rows: Array<{ room_id: string; membership: string; c: number | string }> = await db('current_state')
      .where('type', 'm.room.member')
      .whereIn('room_id', part)
      .whereIn('membership', ['join', 'invite'])
      .groupBy('room_id', 'membership')
      .select('room_id', 'membership')
      .count({ c: '*' });
    for (const r of rows) {
      const entry = out.get(r.room_id)!;
      if (r.membership === 'join') entry.joined = Number(r.c);
      else entry.invited = Number(r.c);
    }
  }
  return out;
}

/**
 * Up to `n` heroes per room (spec: "m.heroes"): other joined or invited members in the order they
 * arrived; rooms with none fall back to members who left.
 */
export async function heroCandidates(db: Db, roomIds: readonly string[], userId: string, n = 5): Promise<Map<string, string[]>> {
  const active = new Map<string, string[]>();
  const former = new Map<string, string[]>();
  for (const part of chunks(roomIds, CHUNK)) {
    const placeholders = part.map(() => '?').join(',');
    const rows = await rawRows<{ room_id: string; state_key: string; active: number | string }>(
      db,
      `SELECT room_id, state_key, active FROM (
         SELECT room_id, state_key, CASE WHEN membership IN ('join', 'invite') THEN 1 ELSE 0 END AS active,
                ROW_NUMBER() OVER (PARTITION BY room_id, CASE WHEN membership IN ('join', 'invite') THEN 1 ELSE 0 END ORDER BY stream_ordering) AS rn
         FROM current_state WHERE type = 'm.room.member' AND state_key <> ? AND room_id IN (${placeholders})
       ) AS ranked WHERE rn <= ? ORDER BY room_id, rn`,
      [userId, ...part, n],
    );
    for (const r of rows) {
      const target = Number(r.active) === 1 ? active : former;
      let list = target.get(r.room_id);
      if (!list) target.set(r.room_id, (list = []));
      list.push(r.state_key);
    }
  }
  const out = new Map<string, string[]>();
  for (const id of roomIds) out.set(id, active.get(id) ?? former.get(id) ?? []);
  return out;
}

export async function maxEventStreamOrdering(db: Db): Promise<number> {
  const row = await db('events').max({ m: 'stream_ordering' }).first();
  return Number(row?.m ?? 0);
}

/** Which of `eventIds` (state events of one room) are part of the room's current state. */
export async function inCurrentState(db: Db, roomId: string, eventIds: readonly string[]): Promise<Set<string>> {
  if (eventIds.length === 0) return new Set();
  const rows: Array<{ event_id: string }> = await db('current_state').where({ room_id: roomId }).whereIn('event_id', [...eventIds]).select('event_id');
  return new Set(rows.map((r) => r.event_id));
}

/** Whether the user joined the room at some point in (from, to] (a join later undone in the same range). */
export async function joinedInRange(db: Db, roomId: string, userId: string, fromExclusive: number, toInclusive: number): Promise<boolean> {
  const row = await db('events')
    .where({ room_id: roomId, type: 'm.room.member', state_key: userId, membership: 'join', outlier: false })
    .whereNull('rejected_reason')
    .andWhere('stream_ordering', '>', fromExclusive)
    .andWhere('stream_ordering', '<=', toInclusive)
    .first('event_id');
  return row !== undefined;
}

/** The current m.room.name and m.room.canonical_alias event ids per room (a summary names heroes only without them). */
export async function namingEventIds(db: Db, roomIds: readonly string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const part of chunks(roomIds, CHUNK)) {
    const rows: Array<{ room_id: string; event_id: string }> = await db('current_state')
      .whereIn('room_id', part)
      .whereIn('type', ['m.room.name', 'm.room.canonical_alias'])
      .where('state_key', '')
      .select('room_id', 'event_id');
    for (const r of rows) {
      let list = out.get(r.room_id);
      if (!list) out.set(r.room_id, (list = []));
      list.push(r.event_id);
    }
  }
  return out;
}

/**
 * Users (not `userId`) who joined, from another membership, a room `userId` is now joined to, in (from, to]:
 * their presence goes to `userId` in that sync even when unchanged (as Synapse).
 */
export async function newJoinersInRange(db: Db, userId: string, fromExclusive: number, toInclusive: number): Promise<string[]> {
  if (fromExclusive >= toInclusive) return [];
  const rows: Array<{ state_key: string }> = await db('events as e')
    .join('current_state as cs', (j) => j.on('cs.room_id', '=', 'e.room_id').andOnVal('cs.type', '=', 'm.room.member').andOnVal('cs.state_key', '=', userId).andOnVal('cs.membership', '=', 'join'))
    .leftJoin('events as p', 'p.event_id', 'e.replaces_state')
    .where('e.stream_ordering', '>', fromExclusive)
    .andWhere('e.stream_ordering', '<=', toInclusive)
    .andWhere({ 'e.type': 'm.room.member', 'e.membership': 'join', 'e.outlier': false })
    .whereNull('e.rejected_reason')
    .andWhere('e.state_key', '<>', userId)
    .andWhere((w) => w.whereNull('p.membership').orWhere('p.membership', '<>', 'join'))
    .distinct('e.state_key');
  return rows.map((r) => r.state_key);
}
