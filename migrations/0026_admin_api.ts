import type { Knex } from 'knex';

// Synapse's admin API: rooms an admin blocked, room deletions and their status, quarantined media.
export async function up(knex: Knex): Promise<void> {
  // A blocked room cannot be joined or invited to by local users (Synapse's `blocked_rooms`).
  await knex.schema.createTable('blocked_rooms', (t) => {
    t.string('room_id', 255).primary();
    t.string('user_id', 255).notNullable();
    t.bigInteger('created_ts').notNullable();
  });
  // One row per room deletion: its status for `delete_status`, and (purge, complete) the room is gone for the admin API.
  await knex.schema.createTable('room_deletions', (t) => {
    t.string('delete_id', 64).primary();
    t.string('room_id', 255).notNullable().index();
    t.string('requester', 255).notNullable();
    t.string('status', 32).notNullable();
    t.boolean('purge').notNullable();
    t.text('error').nullable();
    t.text('result_json').notNullable().defaultTo('{}');
    // What the admin asked for (block, purge, new room …), so an interrupted deletion resumes at start-up.
    t.text('params_json').notNullable().defaultTo('{}');
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('updated_ts').notNullable();
  });
  // Quarantined media is never served again (404), by the admin who quarantined it.
  await knex.schema.alterTable('media', (t) => {
    t.string('quarantined_by', 255).nullable();
  });
  await knex.schema.alterTable('remote_media_cache', (t) => {
    t.string('quarantined_by', 255).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('remote_media_cache', (t) => t.dropColumn('quarantined_by'));
  await knex.schema.alterTable('media', (t) => t.dropColumn('quarantined_by'));
  await knex.schema.dropTableIfExists('room_deletions');
  await knex.schema.dropTableIfExists('blocked_rooms');
}
