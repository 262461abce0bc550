import type { Knex } from 'knex';

// Relations, threads and server-side search. Both tables are derived indexes of `events` (the stored
// JSON stays the source of truth): they are filled after commit by the event indexer and can be rebuilt
// from `events` at any time. `event_index_position` records how far the indexer got, so a restart
// re-indexes whatever committed after the last indexed position (see src/relations/indexer.ts).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('event_relations', (t) => {
    /** The child event (the one carrying `m.relates_to`). */
    t.string('event_id', 255).primary();
    t.string('relates_to_id', 255).notNullable();
    t.string('rel_type', 255).notNullable();
    t.string('room_id', 255).notNullable();
    t.string('type', 255).notNullable();
    t.string('sender', 255).notNullable();
    t.boolean('is_state').notNullable().defaultTo(false);
    t.bigInteger('stream_ordering').notNullable();
    t.bigInteger('origin_server_ts').notNullable();
    t.index(['relates_to_id', 'stream_ordering']);
    t.index(['room_id', 'rel_type', 'stream_ordering']);
  });

  // One row per searchable key of an unencrypted event (content.body, content.name, content.topic).
  await knex.schema.createTable('event_search', (t) => {
    t.bigIncrements('id');
    t.string('event_id', 255).notNullable();
    t.string('room_id', 255).notNullable();
    t.string('sender', 255).notNullable();
    t.string('type', 255).notNullable();
    t.string('key', 32).notNullable();
    t.text('value').notNullable();
    t.bigInteger('stream_ordering').notNullable();
    t.bigInteger('origin_server_ts').notNullable();
    t.unique(['event_id', 'key']);
    t.index(['room_id', 'stream_ordering']);
  });

  if (knex.client.config.client === 'pg') {
    await knex.raw(`CREATE INDEX event_search_tsv ON event_search USING GIN (to_tsvector('english', value))`);
  } else {
    // FTS5 is compiled into the sqlite3 package's bundled SQLite; a build without it falls back to
    // LIKE-based token search (src/storage/repositories/search.ts checks which one exists).
    try {
      await knex.raw(`CREATE VIRTUAL TABLE event_search_fts USING fts5(value, tokenize = 'unicode61 remove_diacritics 2')`);
    } catch {
      // no FTS5: LIKE fallback
    }
  }

  await knex.schema.createTable('event_index_position', (t) => {
    t.integer('id').primary();
    /** Every event at or below this stream position has been indexed. */
    t.bigInteger('stream_ordering').notNullable();
  });
  // Existing history is indexed by the startup backfill, from position 0.
  await knex('event_index_position').insert({ id: 1, stream_ordering: 0 });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('event_index_position');
  if (knex.client.config.client !== 'pg') await knex.raw('DROP TABLE IF EXISTS event_search_fts');
  await knex.schema.dropTableIfExists('event_search');
  await knex.schema.dropTableIfExists('event_relations');
}
