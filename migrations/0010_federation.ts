import type { Knex } from 'knex';

// Remote servers' signing keys (spec: Server-Server API, "Retrieving server keys"). server_keys holds one
// row per verify key, for signature checks; server_keys_json holds the last signed key response per
// server exactly as received (origin's signature only), which this server re-serves as a notary.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('server_keys', (t) => {
    t.string('server_name', 255).notNullable();
    t.string('key_id', 255).notNullable();
    t.string('verify_key', 255).notNullable();
    // For current keys: the response's valid_until_ts capped at fetch time + 7 days. For old keys: expired_ts.
    t.bigInteger('valid_until_ts').notNullable();
    t.bigInteger('expired_ts').nullable();
    t.bigInteger('fetched_ts').notNullable();
    t.primary(['server_name', 'key_id']);
  });
  await knex.schema.createTable('server_keys_json', (t) => {
    t.string('server_name', 255).primary();
    t.string('from_server', 255).notNullable();
    t.text('key_json').notNullable();
    t.bigInteger('valid_until_ts').notNullable();
    t.bigInteger('fetched_ts').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('server_keys_json');
  await knex.schema.dropTableIfExists('server_keys');
}
