import type { Knex } from 'knex';

// Device lists across federation (spec: Server-Server API, "Device Management", "End-to-End Encryption",
// "Send-to-device messaging"):
// - remote_device_lists / remote_devices: the cached device list of remote users that share a room with a
//   local user, at the remote server's stream_id; `stale` means the next /keys/query must resync.
// - local_device_list_outbound: per local user, the device list as last announced over federation and the
//   stream_id of that announcement (m.device_list_update stream_id / prev_id, GET /user/devices).
// - federation_to_device_seen: (origin, message_id) of received m.direct_to_device EDUs, for idempotence.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('remote_device_lists', (t) => {
    t.string('user_id', 255).primary();
    t.bigInteger('stream_id').notNullable();
    t.boolean('stale').notNullable().defaultTo(false);
    t.text('master_key').nullable();
    t.text('self_signing_key').nullable();
    t.bigInteger('updated_ts').notNullable();
  });
  await knex.schema.createTable('remote_devices', (t) => {
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).notNullable();
    t.text('display_name').nullable();
    t.text('key_json').nullable();
    t.primary(['user_id', 'device_id']);
  });
  await knex.schema.createTable('local_device_list_outbound', (t) => {
    t.string('user_id', 255).primary();
    t.bigInteger('stream_id').notNullable();
    t.text('snapshot').notNullable();
  });
  await knex.schema.createTable('federation_to_device_seen', (t) => {
    t.string('origin', 255).notNullable();
    t.string('message_id', 255).notNullable();
    t.bigInteger('received_ts').notNullable();
    t.primary(['origin', 'message_id']);
    t.index(['received_ts'], 'federation_to_device_seen_ts_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['federation_to_device_seen', 'local_device_list_outbound', 'remote_devices', 'remote_device_lists']) {
    await knex.schema.dropTableIfExists(table);
  }
}
