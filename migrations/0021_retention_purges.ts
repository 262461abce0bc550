import type { Knex } from 'knex';

// A retention purge in progress, per room: written before the first batch is deleted and removed after the
// last, so a purge cut short by a crash resumes at start-up with the same cutoff.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('retention_purges', (t) => {
    t.string('room_id', 255).primary();
    t.bigInteger('cutoff_ts').notNullable();
    t.bigInteger('started_ts').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('retention_purges');
}
