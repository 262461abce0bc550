import type { Db } from '../database.js';
import { deleteRelations } from './relations.js';
import { deleteSearchEntries, detectSearchEngine, type SearchEngine } from './search.js';

// Rows derived from an event's content (search index and its FTS5 shadow, notification rows, the
// relations index). Erasure and retention purge an event's content; these must go with it.

const CHUNK = 500;

function dialectOf(db: Db): 'sqlite' | 'postgres' {
  const client = (db as { client?: { config?: { client?: unknown } } }).client?.config?.client;
  return client === 'pg' ? 'postgres' : 'sqlite';
}

/**
 * Drops the derived rows of `eventIds`: their search entries, notifications and their own relation rows
 * (as a child). Idempotent; relations other events hold *to* these events are kept (they are other users'
 * events). `engine` is detected when not given.
 */
export async function deleteDerivedEventRows(db: Db, eventIds: readonly string[], engine?: SearchEngine): Promise<void> {
  if (!eventIds.length) return;
  const ids = [...new Set(eventIds)];
  const searchEngine = engine ?? (await detectSearchEngine(db, dialectOf(db)));
  await deleteSearchEntries(db, searchEngine, ids);
  await deleteRelations(db, ids);
  for (let i = 0; i < ids.length; i += CHUNK) await db('push_notifications').whereIn('event_id', ids.slice(i, i + CHUNK)).delete();
}
