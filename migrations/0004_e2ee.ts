import type { Knex } from 'knex';

// End-to-end encryption bookkeeping: the server keeps public keys, signatures, queued to-device messages
// and encrypted backups; never anything that decrypts a message.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('device_keys', (t) => {
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).notNullable();
    t.text('key_json').notNullable();
    t.primary(['user_id', 'device_id']);
  });

  // The autoincrement id is the upload order: keys are handed out oldest first (spec v1.13).
  await knex.schema.createTable('one_time_keys', (t) => {
    t.bigIncrements('id');
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).notNullable();
    t.string('algorithm', 64).notNullable();
    t.string('key_id', 255).notNullable();
    t.text('key_json').notNullable();
    t.unique(['user_id', 'device_id', 'algorithm', 'key_id']);
    t.index(['user_id', 'device_id', 'algorithm', 'id']);
  });

  await knex.schema.createTable('fallback_keys', (t) => {
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).notNullable();
    t.string('algorithm', 64).notNullable();
    t.string('key_id', 255).notNullable();
    t.text('key_json').notNullable();
    t.boolean('used').notNullable().defaultTo(false);
    t.primary(['user_id', 'device_id', 'algorithm']);
  });

  await knex.schema.createTable('cross_signing_keys', (t) => {
    t.string('user_id', 255).notNullable();
    t.string('key_type', 32).notNullable();
    t.text('key_json').notNullable();
    t.primary(['user_id', 'key_type']);
  });

  // Signatures uploaded through /keys/signatures/upload, merged into /keys/query answers.
  await knex.schema.createTable('key_signatures', (t) => {
    t.string('target_user_id', 255).notNullable();
    t.string('target_key_id', 255).notNullable();
    t.string('signer_user_id', 255).notNullable();
    t.string('signer_key_id', 255).notNullable();
    t.text('signature').notNullable();
    t.primary(['target_user_id', 'target_key_id', 'signer_user_id', 'signer_key_id']);
  });

  // One row per change of a user's devices or cross-signing keys; the device-list stream.
  await knex.schema.createTable('device_list_changes', (t) => {
    t.bigIncrements('stream_id');
    t.string('user_id', 255).notNullable();
    t.index(['user_id', 'stream_id']);
  });

  await knex.schema.createTable('to_device_messages', (t) => {
    t.bigIncrements('stream_id');
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).notNullable();
    t.string('sender', 255).notNullable();
    t.string('type', 255).notNullable();
    t.text('content').notNullable();
    t.index(['user_id', 'device_id', 'stream_id']);
  });

  await knex.schema.createTable('room_key_versions', (t) => {
    t.string('user_id', 255).notNullable();
    t.integer('version').notNullable();
    t.string('algorithm', 255).notNullable();
    t.text('auth_data').notNullable();
    t.integer('etag').notNullable().defaultTo(0);
    t.boolean('deleted').notNullable().defaultTo(false);
    t.primary(['user_id', 'version']);
  });

  await knex.schema.createTable('room_keys', (t) => {
    t.string('user_id', 255).notNullable();
    t.integer('version').notNullable();
    t.string('room_id', 255).notNullable();
    t.string('session_id', 255).notNullable();
    t.integer('first_message_index').notNullable();
    t.integer('forwarded_count').notNullable();
    t.boolean('is_verified').notNullable();
    t.text('session_data').notNullable();
    t.primary(['user_id', 'version', 'room_id', 'session_id']);
  });

  // Committed head of streams whose rows get deleted (to-device), so a position never moves backwards.
  await knex.schema.createTable('stream_heads', (t) => {
    t.string('stream', 64).primary();
    t.bigInteger('position').notNullable();
  });

  await knex.schema.createTable('dehydrated_devices', (t) => {
    t.string('user_id', 255).primary();
    t.string('device_id', 255).notNullable();
    t.text('device_data').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'dehydrated_devices', 'stream_heads', 'room_keys', 'room_key_versions', 'to_device_messages', 'device_list_changes',
    'key_signatures', 'cross_signing_keys', 'fallback_keys', 'one_time_keys', 'device_keys',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
