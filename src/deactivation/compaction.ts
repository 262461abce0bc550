import type { Logger } from 'pino';
import type { Database } from '../storage/database.js';

// After erasure the purged text must not linger in the database files. SQLite runs with secure_delete (freed
// cells and pages are zeroed, src/storage/database.ts); here the FTS5 index merges its segments (deleted terms
// otherwise stay in old segments) and the WAL is checkpointed and truncated. PostgreSQL: VACUUM reclaims the
// dead row versions the updates and deletes left.

export async function compactAfterErasure(db: Database, logger: Logger): Promise<void> {
  if (db.dialect === 'sqlite') {
    const fts = await db.knex('sqlite_master').where({ type: 'table', name: 'event_search_fts' }).first('name');
    if (fts) await db.knex.raw(`INSERT INTO event_search_fts(event_search_fts) VALUES('optimize')`);
    const [row] = (await db.knex.raw('PRAGMA wal_checkpoint(TRUNCATE)')) as Array<{ busy: number; log: number; checkpointed: number }>;
    if (row?.busy) logger.warn('WAL checkpoint after erasure was blocked by a reader; the WAL is truncated at the next one');
    return;
  }
  for (const table of ['events', 'event_search', 'event_relations', 'push_notifications', 'federation_outbox', 'appservice_queue']) {
    await db.knex.raw('VACUUM ??', [table]);
  }
}
