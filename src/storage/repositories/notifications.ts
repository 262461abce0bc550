import type { Db } from '../database.js';
import { chunks } from '../../util/chunks.js';

const CHUNK = 200;

export interface NewNotification {
  userId: string;
  roomId: string;
  eventId: string;
  streamOrdering: number;
  actions: unknown[];
  highlight: boolean;
  threadId: string | null;
  ts: number;
}

export interface NotificationRow extends NewNotification {
  id: number;
}

interface Row {
  id: number | string;
  user_id: string;
  room_id: string;
  event_id: string;
  stream_ordering: number | string;
  actions_json: string;
  highlight: boolean | number;
  thread_id: string | null;
  ts: number | string;
}

const toRow = (r: Row): NotificationRow => ({
  id: Number(r.id),
  userId: r.user_id,
  roomId: r.room_id,
  eventId: r.event_id,
  streamOrdering: Number(r.stream_ordering),
  actions: JSON.parse(r.actions_json) as unknown[],
  highlight: Boolean(r.highlight),
  threadId: r.thread_id,
  ts: Number(r.ts),
});

/** Stores notifications; one per (user, event): a replayed event does not count twice. */
export async function insertNotifications(db: Db, rows: readonly NewNotification[]): Promise<void> {
  for (const part of chunks(rows, 100)) {
    await db('push_notifications')
      .insert(
        part.map((n) => ({
          user_id: n.userId,
          room_id: n.roomId,
          event_id: n.eventId,
          stream_ordering: n.streamOrdering,
          actions_json: JSON.stringify(n.actions),
          highlight: n.highlight,
          thread_id: n.threadId,
          ts: n.ts,
        })),
      )
      .onConflict(['user_id', 'event_id'])
      .ignore();
  }
}

export interface CountRow {
  roomId: string;
  threadId: string | null;
  notifications: number;
  highlights: number;
}

/**
 * Notifications per (room, thread) after the read position of each room (rows with a greater
 * stream_ordering; all rows of rooms without a position), optionally only up to `upTo`.
 */
export async function countNotifications(
  db: Db,
  userId: string,
  roomIds: readonly string[],
  readUpTo: ReadonlyMap<string, number>,
  upTo?: number,
): Promise<CountRow[]> {
  const out: CountRow[] = [];
  for (const part of chunks(roomIds, CHUNK)) {
    const rows: Array<{ room_id: string; thread_id: string | null; n: number | string; h: number | string | null }> = await db('push_notifications')
      .where('user_id', userId)
      .andWhere((q) => {
        for (const roomId of part) {
          const after = readUpTo.get(roomId);
          if (after === undefined) q.orWhere('room_id', roomId);
          else q.orWhere((w) => w.where('room_id', roomId).andWhere('stream_ordering', '>', after));
        }
      })
      .modify((q) => {
        if (upTo !== undefined) q.andWhere('stream_ordering', '<=', upTo);
      })
      .groupBy('room_id', 'thread_id')
      .select('room_id', 'thread_id')
      .count({ n: '*' })
      .select(db.raw('SUM(CASE WHEN highlight THEN 1 ELSE 0 END) AS h'));
    for (const r of rows) out.push({ roomId: r.room_id, threadId: r.thread_id, notifications: Number(r.n), highlights: Number(r.h ?? 0) });
  }
  return out;
}

/** Rooms the user has any notification in (for totals across rooms, e.g. the push badge). */
export async function roomsWithNotifications(db: Db, userId: string): Promise<string[]> {
  const rows: Array<{ room_id: string }> = await db('push_notifications').where('user_id', userId).distinct('room_id');
  return rows.map((r) => r.room_id);
}

/** Newest first, strictly before `beforeStream` when given (GET /notifications pagination). */
export async function listNotifications(
  db: Db,
  userId: string,
  opts: { beforeStream?: number | undefined; limit: number; onlyHighlight: boolean },
): Promise<NotificationRow[]> {
  const rows: Row[] = await db('push_notifications')
    .where('user_id', userId)
    .modify((q) => {
      if (opts.beforeStream !== undefined) q.andWhere('stream_ordering', '<', opts.beforeStream);
      if (opts.onlyHighlight) q.andWhere('highlight', true);
    })
    .orderBy('stream_ordering', 'desc')
    .limit(opts.limit);
  return rows.map(toRow);
}

/** Drops notifications older than `ts` (bounded storage). Returns how many went. */
export async function pruneNotifications(db: Db, olderThanTs: number): Promise<number> {
  return db('push_notifications').where('ts', '<', olderThanTs).delete();
}
