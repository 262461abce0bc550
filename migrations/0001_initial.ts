import type { Knex } from 'knex';

// One schema for both dialects. Event JSON is stored exactly as created or received (the source of truth);
// every other column is derived from it for indexing.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.string('user_id', 255).primary();
    t.text('password_hash').nullable();
    t.bigInteger('created_ts').notNullable();
    t.boolean('deactivated').notNullable().defaultTo(false);
    t.boolean('admin').notNullable().defaultTo(false);
    t.boolean('is_guest').notNullable().defaultTo(false);
    t.string('appservice_id', 255).nullable();
    t.text('displayname').nullable();
    t.text('avatar_url').nullable();
  });

  await knex.schema.createTable('devices', (t) => {
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).notNullable();
    t.text('display_name').nullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('last_seen_ts').nullable();
    t.string('last_seen_ip', 64).nullable();
    t.text('last_seen_user_agent').nullable();
    t.boolean('hidden').notNullable().defaultTo(false);
    t.primary(['user_id', 'device_id']);
  });

  await knex.schema.createTable('refresh_tokens', (t) => {
    t.increments('id');
    t.string('token_hash', 64).notNullable().unique();
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).notNullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('expires_ts').nullable();
    t.integer('next_token_id').nullable();
    t.index(['user_id', 'device_id']);
  });

  await knex.schema.createTable('access_tokens', (t) => {
    t.increments('id');
    t.string('token_hash', 64).notNullable().unique();
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).nullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('expires_ts').nullable();
    t.integer('refresh_token_id').nullable();
    t.boolean('used').notNullable().defaultTo(false);
    t.index(['user_id', 'device_id']);
  });

  await knex.schema.createTable('uia_sessions', (t) => {
    t.string('session_id', 64).primary();
    t.bigInteger('created_ts').notNullable();
    t.string('user_id', 255).nullable();
    t.text('request_fingerprint').notNullable();
    t.text('completed_json').notNullable().defaultTo('[]');
    t.text('params_json').notNullable().defaultTo('{}');
  });

  await knex.schema.createTable('registration_tokens', (t) => {
    t.string('token', 255).primary();
    t.integer('uses_allowed').nullable();
    t.integer('pending').notNullable().defaultTo(0);
    t.integer('completed').notNullable().defaultTo(0);
    t.bigInteger('expiry_time').nullable();
  });

  await knex.schema.createTable('filters', (t) => {
    t.increments('filter_id');
    t.string('user_id', 255).notNullable().index();
    t.text('filter_json').notNullable();
  });

  await knex.schema.createTable('account_data', (t) => {
    t.bigIncrements('stream_id');
    t.string('user_id', 255).notNullable();
    t.string('room_id', 255).notNullable().defaultTo('');
    t.string('type', 255).notNullable();
    t.text('content').notNullable();
    t.unique(['user_id', 'room_id', 'type']);
    t.index(['user_id', 'stream_id']);
  });

  // Responses remembered per (user, device, endpoint, txnId) so retries never duplicate anything.
  await knex.schema.createTable('transaction_responses', (t) => {
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).notNullable();
    t.string('scope', 255).notNullable();
    t.string('txn_id', 255).notNullable();
    t.text('response_json').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.primary(['user_id', 'device_id', 'scope', 'txn_id']);
  });

  await knex.schema.createTable('rooms', (t) => {
    t.string('room_id', 255).primary();
    t.string('room_version', 32).notNullable();
    t.string('creator', 255).nullable();
    t.boolean('is_public').notNullable().defaultTo(false);
    t.bigInteger('created_ts').notNullable();
    t.integer('current_state_group').nullable();
  });

  await knex.schema.createTable('forgotten_rooms', (t) => {
    t.string('user_id', 255).notNullable();
    t.string('room_id', 255).notNullable();
    t.primary(['user_id', 'room_id']);
  });

  await knex.schema.createTable('state_groups', (t) => {
    t.increments('id');
    t.string('room_id', 255).notNullable();
    t.integer('prev_group').nullable();
    t.integer('delta_depth').notNullable().defaultTo(0);
  });

  // A group stores only its delta from prev_group (a full snapshot every so often), so state storage
  // grows with the number of state changes, not with room size times events.
  await knex.schema.createTable('state_group_entries', (t) => {
    t.integer('group_id').notNullable();
    t.string('type', 255).notNullable();
    t.string('state_key', 255).notNullable();
    t.string('event_id', 255).nullable();
    t.primary(['group_id', 'type', 'state_key']);
  });

  await knex.schema.createTable('events', (t) => {
    t.bigIncrements('stream_ordering');
    t.string('event_id', 255).notNullable().unique();
    t.string('room_id', 255).notNullable();
    t.string('type', 255).notNullable();
    t.string('state_key', 255).nullable();
    t.string('sender', 255).notNullable();
    t.bigInteger('depth').notNullable();
    t.bigInteger('origin_server_ts').notNullable();
    t.string('membership', 32).nullable();
    t.text('json').notNullable();
    t.integer('state_before').nullable();
    t.integer('state_after').nullable();
    t.boolean('outlier').notNullable().defaultTo(false);
    t.string('rejected_reason', 255).nullable();
    t.string('redacted_by', 255).nullable();
    t.string('sender_device', 255).nullable();
    t.string('txn_id', 255).nullable();
    // The state event this one replaced, for unsigned.prev_content in client responses.
    t.string('replaces_state', 255).nullable();
    t.index(['room_id', 'stream_ordering']);
    t.index(['room_id', 'depth', 'stream_ordering']);
    t.index(['room_id', 'type', 'state_key']);
    t.index(['sender', 'txn_id']);
  });

  await knex.schema.createTable('redactions', (t) => {
    t.string('event_id', 255).primary();
    t.string('redacts', 255).notNullable().index();
  });

  await knex.schema.createTable('forward_extremities', (t) => {
    t.string('room_id', 255).notNullable();
    t.string('event_id', 255).notNullable();
    t.primary(['room_id', 'event_id']);
  });

  await knex.schema.createTable('current_state', (t) => {
    t.string('room_id', 255).notNullable();
    t.string('type', 255).notNullable();
    t.string('state_key', 255).notNullable();
    t.string('event_id', 255).notNullable();
    t.string('membership', 32).nullable();
    t.bigInteger('stream_ordering').notNullable();
    t.primary(['room_id', 'type', 'state_key']);
    t.index(['state_key', 'type', 'membership']);
  });

  await knex.schema.createTable('room_aliases', (t) => {
    t.string('room_alias', 255).primary();
    t.string('room_id', 255).notNullable().index();
    t.string('creator', 255).nullable();
    t.bigInteger('created_ts').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'room_aliases', 'current_state', 'forward_extremities', 'redactions', 'events', 'state_group_entries',
    'state_groups', 'forgotten_rooms', 'rooms', 'transaction_responses', 'account_data', 'filters', 'registration_tokens',
    'uia_sessions', 'access_tokens', 'refresh_tokens', 'devices', 'users',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
