import type { Knex } from 'knex';

// A notary keeps every key ID's last signed response (as Synapse's server_keys_json, by server and key ID), so a
// response from the origin that no longer lists a key cannot make it forget that key. Replaces server_keys_json
// (one response per server); that was a cache, refetched on demand.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('server_key_responses', (t) => {
    t.string('server_name', 255).notNullable();
    t.string('key_id', 255).notNullable();
    t.string('from_server', 255).notNullable();
    t.text('key_json').notNullable();
    t.bigInteger('valid_until_ts').notNullable();
    t.bigInteger('fetched_ts').notNullable();
    t.primary(['server_name', 'key_id']);
  });
  await knex.schema.dropTableIfExists('server_keys_json');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('server_key_responses');
  await knex.schema.createTable('server_keys_json', (t) => {
    t.string('server_name', 255).primary();
    t.string('from_server', 255).notNullable();
    t.text('key_json').notNullable();
    t.bigInteger('valid_until_ts').notNullable();
    t.bigInteger('fetched_ts').notNullable();
  });
}
