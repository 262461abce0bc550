import type { Knex } from 'knex';
import type { Db } from '../database.js';
import { toStoredEvent, type EventRow, type StoredEvent } from './events.js';

// Server-side search over `event_search` (migrations/0009_relations.ts), one repository with a branch
// per engine: SQLite FTS5 (bm25 rank, prefix terms), PostgreSQL full text (to_tsvector/to_tsquery with
// the 'english' configuration, ts_rank), and a LIKE-based token search for SQLite builds without FTS5.

export type SearchEngine = 'fts5' | 'like' | 'postgres';

export interface SearchEntry {
  eventId: string;
  roomId: string;
  sender: string;
  type: string;
  key: string;
  value: string;
  streamOrdering: number;
  originServerTs: number;
}

/** Which engine this database offers: PostgreSQL, or SQLite with or without the FTS5 table. */
export async function detectSearchEngine(db: Knex, dialect: 'sqlite' | 'postgres'): Promise<SearchEngine> {
  if (dialect === 'postgres') return 'postgres';
  const row = await db('sqlite_master').where({ type: 'table', name: 'event_search_fts' }).first('name');
  return row ? 'fts5' : 'like';
}

const CHUNK = 500;

/** Idempotent: (event, key) pairs already indexed are skipped. */
export async function insertSearchEntries(db: Db, engine: SearchEngine, entries: readonly SearchEntry[]): Promise<void> {
  if (!entries.length) return;
  const ids = [...new Set(entries.map((e) => e.eventId))];
  const existing = new Set<string>();
  for (let i = 0; i < ids.length; i += CHUNK) {
    const rows: Array<{ event_id: string; key: string }> = await db('event_search').whereIn('event_id', ids.slice(i, i + CHUNK)).select('event_id', 'key');
    for (const r of rows) existing.add(`${r.event_id}\u0000${r.key}`);
  }
  const fresh = entries.filter((e) => !existing.has(`${e.eventId}\u0000${e.key}`));
  for (let i = 0; i < fresh.length; i += CHUNK) {
    const slice = fresh.slice(i, i + CHUNK);
    await db('event_search').insert(
      slice.map((e) => ({
        event_id: e.eventId,
        room_id: e.roomId,
        sender: e.sender,
        type: e.type,
        key: e.key,
        value: e.value,
        stream_ordering: e.streamOrdering,
        origin_server_ts: e.originServerTs,
      })),
    );
    if (engine === 'fts5') {
      const freshIds = [...new Set(slice.map((e) => e.eventId))];
      await db.raw(
        `INSERT INTO event_search_fts(rowid, value) SELECT id, value FROM event_search WHERE event_id IN (${freshIds.map(() => '?').join(',')})`,
        freshIds,
      );
    }
  }
}

export async function deleteSearchEntries(db: Db, engine: SearchEngine, eventIds: readonly string[]): Promise<void> {
  for (let i = 0; i < eventIds.length; i += CHUNK) {
    const slice = eventIds.slice(i, i + CHUNK);
    if (engine === 'fts5') {
      await db.raw(
        `DELETE FROM event_search_fts WHERE rowid IN (SELECT id FROM event_search WHERE event_id IN (${slice.map(() => '?').join(',')}))`,
        slice,
      );
    }
    await db('event_search').whereIn('event_id', slice).delete();
  }
}

/** Words of a search term: runs of letters, digits and underscores (nothing else reaches the query syntax). */
export function searchWords(term: string): string[] {
  return [...new Set((term.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? []).slice(0, 16))];
}

export interface SearchQuery {
  words: readonly string[];
  /** Rooms searched; events above a room's ceiling (a user who left) are out of reach. */
  rooms: ReadonlyArray<{ roomId: string; ceiling: number | undefined }>;
  keys: readonly string[];
  senders?: readonly string[] | undefined;
  notSenders?: readonly string[] | undefined;
  /** Exact types only; wildcard type filters are applied by the caller. */
  types?: readonly string[] | undefined;
  notTypes?: readonly string[] | undefined;
}

export interface SearchHit {
  eventId: string;
  roomId: string;
  streamOrdering: number;
  rank: number;
}

function escapeLike(word: string): string {
  return `%${word.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function matching(db: Db, engine: SearchEngine, query: SearchQuery): Knex.QueryBuilder {
  const q = db('event_search as s');
  if (engine === 'fts5') {
    q.join('event_search_fts', 'event_search_fts.rowid', 's.id').whereRaw('event_search_fts MATCH ?', [query.words.map((w) => `"${w}"*`).join(' ')]);
  } else if (engine === 'postgres') {
    q.whereRaw(`to_tsvector('english', s.value) @@ to_tsquery('english', ?)`, [query.words.map((w) => `${w}:*`).join(' & ')]);
  } else {
    for (const w of query.words) q.whereRaw(`lower(s.value) LIKE ? ESCAPE '\\'`, [escapeLike(w)]);
  }
  q.whereIn('s.key', query.keys as string[]);
  const open = query.rooms.filter((r) => r.ceiling === undefined).map((r) => r.roomId);
  const capped = query.rooms.filter((r) => r.ceiling !== undefined);
  q.andWhere((w) => {
    if (open.length) w.orWhereIn('s.room_id', open);
    for (const r of capped) w.orWhere((x) => x.where('s.room_id', r.roomId).andWhere('s.stream_ordering', '<=', r.ceiling!));
    if (!open.length && !capped.length) w.whereRaw('1 = 0');
  });
  if (query.senders) q.whereIn('s.sender', query.senders as string[]);
  if (query.notSenders?.length) q.whereNotIn('s.sender', query.notSenders as string[]);
  if (query.types) q.whereIn('s.type', query.types as string[]);
  if (query.notTypes?.length) q.whereNotIn('s.type', query.notTypes as string[]);
  return q;
}

function scoreColumn(db: Db, engine: SearchEngine, query: SearchQuery): Knex.Raw {
  if (engine === 'fts5') return db.raw('-bm25(event_search_fts) as score');
  if (engine === 'postgres') {
    return db.raw(`ts_rank(to_tsvector('english', s.value), to_tsquery('english', ?)) as score`, [query.words.map((w) => `${w}:*`).join(' & ')]);
  }
  return db.raw('1 as score');
}

/**
 * One page of matches: by rank (best first, `offset` rows skipped) or by recency (newest first, strictly
 * below the stream position `before`).
 */
export async function searchPage(
  db: Db,
  engine: SearchEngine,
  query: SearchQuery,
  page: { order: 'rank' | 'recent'; offset: number; before: number | undefined; limit: number },
): Promise<SearchHit[]> {
  if (!query.words.length || !query.rooms.length) return [];
  const q = matching(db, engine, query).select('s.event_id', 's.room_id', 's.stream_ordering', scoreColumn(db, engine, query));
  if (page.order === 'recent') {
    if (page.before !== undefined) q.andWhere('s.stream_ordering', '<', page.before);
    q.orderBy('s.stream_ordering', 'desc');
  } else {
    q.orderBy([{ column: 'score', order: 'desc' }, { column: 's.stream_ordering', order: 'desc' }]).offset(page.offset);
  }
  const rows: Array<{ event_id: string; room_id: string; stream_ordering: number | string; score: number | string }> = await q.limit(page.limit);
  return rows.map((r) => ({ eventId: r.event_id, roomId: r.room_id, streamOrdering: Number(r.stream_ordering), rank: Number(r.score) }));
}

/** How many entries match in total (before history-visibility filtering: the spec's "approximate count"). */
export async function countMatches(db: Db, engine: SearchEngine, query: SearchQuery): Promise<number> {
  if (!query.words.length || !query.rooms.length) return 0;
  const row = await matching(db, engine, query).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

/** The words of the matched events the engine highlighted (stemmed and prefix matches included). */
export async function highlightedWords(db: Db, engine: SearchEngine, words: readonly string[], eventIds: readonly string[]): Promise<string[]> {
  const found = new Set<string>(words);
  if (!eventIds.length || !words.length) return [...found];
  let texts: string[] = [];
  if (engine === 'fts5') {
    const rows: Array<{ h: string }> = await db.raw(
      `SELECT highlight(event_search_fts, 0, char(1), char(2)) AS h FROM event_search_fts
       WHERE event_search_fts MATCH ? AND rowid IN (SELECT id FROM event_search WHERE event_id IN (${eventIds.map(() => '?').join(',')}))`,
      [words.map((w) => `"${w}"*`).join(' '), ...eventIds],
    );
    texts = rows.map((r) => r.h);
  } else if (engine === 'postgres') {
    const res: { rows: Array<{ h: string }> } = await db.raw(
      `SELECT ts_headline('english', value, to_tsquery('english', ?), 'StartSel=' || chr(1) || ', StopSel=' || chr(2) || ', HighlightAll=true') AS h
       FROM event_search WHERE event_id IN (${eventIds.map(() => '?').join(',')})`,
      [words.map((w) => `${w}:*`).join(' & '), ...eventIds],
    );
    texts = res.rows.map((r) => r.h);
  }
  for (const text of texts) {
    for (const m of text.matchAll(/\u0001([^\u0002]*)\u0002/g)) {
      const w = m[1]!.trim().toLowerCase();
      if (w) found.add(w);
    }
  }
  return [...found];
}

/**
 * A room's events by origin_server_ts from `ts` in one direction (dir `f`: at or after, oldest first;
 * `b`: at or before, newest first), continuing after `after` (the last one already seen).
 */
export async function roomEventsByTimestamp(
  db: Db,
  roomId: string,
  ts: number,
  dir: 'f' | 'b',
  after: { ts: number; stream: number } | undefined,
  limit: number,
): Promise<StoredEvent[]> {
  const q = db('events').where('room_id', roomId).andWhere('outlier', false).whereNull('rejected_reason');
  if (dir === 'f') {
    q.andWhere('origin_server_ts', '>=', ts);
    if (after) q.andWhere((w) => w.where('origin_server_ts', '>', after.ts).orWhere((x) => x.where('origin_server_ts', after.ts).andWhere('stream_ordering', '>', after.stream)));
    q.orderBy([{ column: 'origin_server_ts', order: 'asc' }, { column: 'stream_ordering', order: 'asc' }]);
  } else {
    q.andWhere('origin_server_ts', '<=', ts);
    if (after) q.andWhere((w) => w.where('origin_server_ts', '<', after.ts).orWhere((x) => x.where('origin_server_ts', after.ts).andWhere('stream_ordering', '<', after.stream)));
    q.orderBy([{ column: 'origin_server_ts', order: 'desc' }, { column: 'stream_ordering', order: 'desc' }]);
  }
  const rows: EventRow[] = await q.limit(limit);
  return rows.map(toStoredEvent);
}
