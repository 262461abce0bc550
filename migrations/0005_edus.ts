import type { Knex } from 'knex';

// Receipts and presence (typing lives in memory). Both tables keep one row per key; a change deletes the
// row and inserts a new one, so its autoincrement id is the change's stream position and the maximum
// never moves backwards.
export async function up(knex: Knex): Promise<void> {
  // thread_id is '' for an unthreaded receipt, so the unique key works the same on both dialects.
  await knex.schema.createTable('receipts', (t) => {
    t.bigIncrements('stream_id');
    t.string('room_id', 255).notNullable();
    t.string('user_id', 255).notNullable();
    t.string('receipt_type', 64).notNullable();
    t.string('thread_id', 255).notNullable().defaultTo('');
    t.string('event_id', 255).notNullable();
    // stream_ordering of the receipted event: "later" for keeping the newest receipt and unread counts.
    t.bigInteger('event_stream').notNullable();
    t.bigInteger('ts').notNullable();
    t.unique(['room_id', 'user_id', 'receipt_type', 'thread_id']);
    t.index(['user_id', 'room_id']);
    t.index(['room_id', 'stream_id']);
  });

  await knex.schema.createTable('presence', (t) => {
    t.bigIncrements('stream_id');
    t.string('user_id', 255).notNullable().unique();
    t.string('state', 32).notNullable();
    t.text('status_msg').nullable();
    t.bigInteger('last_active_ts').notNullable();
    // The last sign of life (a /sync or a presence update); offline is derived from it when read.
    t.bigInteger('last_sync_ts').notNullable();
    // The state was set through PUT /presence (a sync's set_presence does not override it).
    t.boolean('explicit').notNullable().defaultTo(false);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('presence');
  await knex.schema.dropTableIfExists('receipts');
}
