import type { Knex } from 'knex';

// Reports of rooms, events and users (spec: "Reporting content"), OpenID tokens for identity checks by
// other services (spec: "OpenID"), and single-use login tokens (spec: "POST /login/get_token").
// Tokens are stored only as their sha256.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('reports', (t) => {
    t.bigIncrements('id');
    t.string('reporter', 255).notNullable();
    t.string('room_id', 255).nullable();
    t.string('event_id', 255).nullable();
    t.string('target_user_id', 255).nullable();
    t.text('reason').nullable();
    t.integer('score').nullable();
    t.bigInteger('received_ts').notNullable();
    t.index(['room_id']);
    t.index(['received_ts']);
  });

  await knex.schema.createTable('openid_tokens', (t) => {
    t.string('token_hash', 64).primary();
    t.string('user_id', 255).notNullable();
    t.bigInteger('expires_ts').notNullable().index();
  });

  await knex.schema.createTable('login_tokens', (t) => {
    t.string('token_hash', 64).primary();
    t.string('user_id', 255).notNullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('expires_ts').notNullable().index();
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['login_tokens', 'openid_tokens', 'reports']) await knex.schema.dropTableIfExists(table);
}
