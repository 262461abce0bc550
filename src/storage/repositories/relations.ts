import type { Db } from '../database.js';

// The `event_relations` index (migrations/0009_relations.ts): one row per event carrying a valid
// `m.relates_to` {rel_type, event_id}. Derived from `events`; rows of redacted events are removed.

export interface RelationRow {
  eventId: string;
  relatesToId: string;
  relType: string;
  roomId: string;
  type: string;
  sender: string;
  isState: boolean;
  streamOrdering: number;
  originServerTs: number;
}

interface RawRelationRow {
  event_id: string;
  relates_to_id: string;
  rel_type: string;
  room_id: string;
  type: string;
  sender: string;
  is_state: boolean | number;
  stream_ordering: number | string;
  origin_server_ts: number | string;
}

function fromRaw(r: RawRelationRow): RelationRow {
  return {
    eventId: r.event_id,
    relatesToId: r.relates_to_id,
    relType: r.rel_type,
    roomId: r.room_id,
    type: r.type,
    sender: r.sender,
    isState: Boolean(r.is_state),
    streamOrdering: Number(r.stream_ordering),
    originServerTs: Number(r.origin_server_ts),
  };
}

const CHUNK = 500;

/** Idempotent: rows already indexed (a backfill overlapping the after-commit hook) are kept. */
export async function insertRelations(db: Db, rows: readonly RelationRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += CHUNK) {
    await db('event_relations')
      .insert(
        rows.slice(i, i + CHUNK).map((r) => ({
          event_id: r.eventId,
          relates_to_id: r.relatesToId,
          rel_type: r.relType,
          room_id: r.roomId,
          type: r.type,
          sender: r.sender,
          is_state: r.isState,
          stream_ordering: r.streamOrdering,
          origin_server_ts: r.originServerTs,
        })),
      )
      .onConflict('event_id')
      .ignore();
  }
}

export async function deleteRelations(db: Db, eventIds: readonly string[]): Promise<void> {
  for (let i = 0; i < eventIds.length; i += CHUNK) await db('event_relations').whereIn('event_id', eventIds.slice(i, i + CHUNK)).delete();
}

/** Children of any of `parentIds` in the room, optionally only of some relation types, oldest first. */
export async function childrenOf(db: Db, roomId: string, parentIds: readonly string[], relTypes?: readonly string[]): Promise<RelationRow[]> {
  const out: RelationRow[] = [];
  for (let i = 0; i < parentIds.length; i += CHUNK) {
    const q = db('event_relations').where('room_id', roomId).whereIn('relates_to_id', parentIds.slice(i, i + CHUNK));
    if (relTypes) q.whereIn('rel_type', relTypes as string[]);
    const rows: RawRelationRow[] = await q.orderBy('stream_ordering', 'asc');
    out.push(...rows.map(fromRaw));
  }
  return out;
}

/**
 * One page of children of `parentIds` by stream position: dir `b` newest first at or below `from`,
 * dir `f` oldest first above `from`; `to` bounds the other end the same way /messages tokens do.
 */
export async function relationsPage(
  db: Db,
  params: {
    roomId: string;
    parentIds: readonly string[];
    relType?: string | undefined;
    eventType?: string | undefined;
    dir: 'b' | 'f';
    from: number;
    to?: number | undefined;
    ceiling: number;
    limit: number;
  },
): Promise<RelationRow[]> {
  const q = db('event_relations').where('room_id', params.roomId).whereIn('relates_to_id', params.parentIds as string[]);
  if (params.relType !== undefined) q.andWhere('rel_type', params.relType);
  if (params.eventType !== undefined) q.andWhere('type', params.eventType);
  q.andWhere('stream_ordering', '<=', params.ceiling);
  if (params.dir === 'b') {
    q.andWhere('stream_ordering', '<=', params.from);
    if (params.to !== undefined) q.andWhere('stream_ordering', '>', params.to);
    q.orderBy('stream_ordering', 'desc');
  } else {
    q.andWhere('stream_ordering', '>', params.from);
    if (params.to !== undefined) q.andWhere('stream_ordering', '<=', params.to);
    q.orderBy('stream_ordering', 'asc');
  }
  const rows: RawRelationRow[] = await q.limit(params.limit);
  return rows.map(fromRaw);
}

/**
 * Thread roots of a room by latest activity (the newest m.thread child), newest first, strictly below
 * `beforeLatest`. With `participant`, only threads whose root they sent or in which they replied.
 */
export async function threadRoots(
  db: Db,
  params: { roomId: string; beforeLatest: number; ceiling: number; limit: number; participant?: string | undefined },
): Promise<Array<{ rootId: string; latest: number }>> {
  const q = db('event_relations as r')
    .join('events as e', 'e.event_id', 'r.relates_to_id')
    .where('r.room_id', params.roomId)
    .andWhere('r.rel_type', 'm.thread')
    .andWhere('r.stream_ordering', '<=', params.ceiling);
  if (params.participant !== undefined) {
    const user = params.participant;
    q.andWhere((w) =>
      w.where('e.sender', user).orWhereExists((sub) =>
        sub
          .select(db.raw('1'))
          .from('event_relations as p')
          .whereRaw('p.relates_to_id = r.relates_to_id')
          .andWhere('p.rel_type', 'm.thread')
          .andWhere('p.sender', user),
      ),
    );
  }
  const rows = (await q
    .groupBy('r.relates_to_id')
    .havingRaw('max(r.stream_ordering) < ?', [params.beforeLatest])
    .select('r.relates_to_id as root')
    .max({ latest: 'r.stream_ordering' })
    .orderBy('latest', 'desc')
    .limit(params.limit)) as unknown as Array<{ root: string; latest: number | string }>;
  return rows.map((r) => ({ rootId: r.root, latest: Number(r.latest) }));
}

export async function indexPosition(db: Db): Promise<number> {
  const row = await db('event_index_position').where('id', 1).first('stream_ordering');
  return Number(row?.stream_ordering ?? 0);
}

export async function advanceIndexPosition(db: Db, position: number): Promise<void> {
  await db('event_index_position').where('id', 1).andWhere('stream_ordering', '<', position).update({ stream_ordering: position });
}
