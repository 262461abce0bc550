import type { Knex } from 'knex';

// Self-destructing messages (MSC2228): when each event that asked for it is to be pruned. Written in the
// transaction that stores the event, so an expiry is never lost to a crash.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('event_expiry', (t) => {
    t.string('event_id', 255).primary();
    t.string('room_id', 255).notNullable();
    t.bigInteger('expiry_ts').notNullable().index();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('event_expiry');
}
