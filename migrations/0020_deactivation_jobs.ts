import type { Knex } from 'knex';

// Account deactivation runs as a durable job (src/deactivation/): one row per user being deactivated, with
// the next step to run, so a process that dies mid-way resumes at start-up where it stopped. Every step is
// idempotent; the row goes when the last step is done.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('deactivation_jobs', (t) => {
    t.string('user_id', 255).primary();
    t.boolean('erase').notNullable().defaultTo(false);
    t.string('step', 64).notNullable();
    t.integer('attempts').notNullable().defaultTo(0);
    t.text('last_error').nullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('updated_ts').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('deactivation_jobs');
}
