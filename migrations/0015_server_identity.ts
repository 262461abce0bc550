import type { Knex } from 'knex';

// Facts about the server that the data depends on; `server_name` is written at first start and checked
// at every start after, since every stored user, room and event ID carries it.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('server_identity', (t) => {
    t.string('key', 64).primary();
    t.text('value').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('server_identity');
}
