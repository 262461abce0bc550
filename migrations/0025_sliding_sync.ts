import type { Knex } from 'knex';

// MSC4186 sliding sync connections. A connection is (user, device, conn_id); each answer it was given is a
// position whose row holds what the connection had been sent (per room: live or behind since a stream
// position, the timeline limit and required state last used), so a restart resumes it and a retried `pos`
// is answered from the state it named.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('sliding_sync_connections', (t) => {
    t.increments('connection_key').primary();
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).notNullable();
    t.string('conn_id', 255).notNullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('last_used_ts').notNullable();
    t.unique(['user_id', 'device_id', 'conn_id']);
    t.index(['last_used_ts']);
  });
  await knex.schema.createTable('sliding_sync_positions', (t) => {
    t.increments('position').primary();
    t.integer('connection_key').notNullable().references('connection_key').inTable('sliding_sync_connections').onDelete('CASCADE');
    t.text('rooms').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.index(['connection_key']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('sliding_sync_positions');
  await knex.schema.dropTableIfExists('sliding_sync_connections');
}
