import type { Knex } from 'knex';

// Accounts: server-private UIA session data (e.g. which registration token a session consumed), the
// `erase` request recorded at deactivation, and single-use nonces for shared-secret registration (kept in
// the database so every process behind one PostgreSQL accepts a nonce another process handed out), and
// indexes for refresh-token rotation.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('uia_sessions', (t) => {
    t.text('data_json').notNullable().defaultTo('{}');
  });
  await knex.schema.alterTable('users', (t) => {
    t.boolean('erased').notNullable().defaultTo(false);
  });
  // Refresh-token rotation looks tokens up by the token they were rotated into / issued with.
  await knex.schema.alterTable('refresh_tokens', (t) => {
    t.index(['next_token_id']);
  });
  await knex.schema.alterTable('access_tokens', (t) => {
    t.index(['refresh_token_id']);
  });
  await knex.schema.createTable('registration_nonces', (t) => {
    t.string('nonce', 64).primary();
    t.bigInteger('created_ts').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('registration_nonces');
  await knex.schema.alterTable('access_tokens', (t) => {
    t.dropIndex(['refresh_token_id']);
  });
  await knex.schema.alterTable('refresh_tokens', (t) => {
    t.dropIndex(['next_token_id']);
  });
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('erased');
  });
  await knex.schema.alterTable('uia_sessions', (t) => {
    t.dropColumn('data_json');
  });
}
