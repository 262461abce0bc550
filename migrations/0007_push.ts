import type { Knex } from 'knex';

// Push notifications: each user's push rules (user-defined rules, and their changes to server-default
// rules), the notifications their rules produced, and the pushers (push gateways) to deliver them to.
export async function up(knex: Knex): Promise<void> {
  // One row per user-defined rule, or per server-default rule whose `enabled`/`actions` the user changed
  // (is_default = true: only those two columns mean anything, null = unchanged).
  await knex.schema.createTable('push_rules', (t) => {
    t.string('user_id', 255).notNullable();
    t.string('kind', 16).notNullable();
    t.string('rule_id', 255).notNullable();
    t.boolean('is_default').notNullable().defaultTo(false);
    /** Order among the user's rules of the kind: lower is more important. */
    t.integer('position').notNullable().defaultTo(0);
    t.text('pattern').nullable();
    t.text('conditions_json').nullable();
    t.text('actions_json').nullable();
    t.boolean('enabled').nullable();
    t.primary(['user_id', 'kind', 'rule_id']);
  });

  // Only events that notify get a row (bounded by what users are notified of, pruned by age).
  await knex.schema.createTable('push_notifications', (t) => {
    t.bigIncrements('id');
    t.string('user_id', 255).notNullable();
    t.string('room_id', 255).notNullable();
    t.string('event_id', 255).notNullable();
    t.bigInteger('stream_ordering').notNullable();
    t.text('actions_json').notNullable();
    t.boolean('highlight').notNullable().defaultTo(false);
    /** The thread root for events in a thread (rel_type m.thread), null for the main timeline. */
    t.string('thread_id', 255).nullable();
    t.bigInteger('ts').notNullable();
    t.unique(['user_id', 'event_id']);
    t.index(['user_id', 'room_id', 'stream_ordering']);
    t.index(['user_id', 'stream_ordering']);
    t.index(['ts']);
  });

  await knex.schema.createTable('pushers', (t) => {
    t.bigIncrements('id');
    t.string('user_id', 255).notNullable();
    t.string('app_id', 64).notNullable();
    t.string('pushkey', 512).notNullable();
    t.string('kind', 32).notNullable();
    t.text('app_display_name').notNullable();
    t.text('device_display_name').notNullable();
    t.string('profile_tag', 255).nullable();
    t.string('lang', 64).notNullable();
    t.text('data_json').notNullable();
    t.string('device_id', 255).nullable();
    t.bigInteger('created_ts').notNullable();
    t.unique(['app_id', 'pushkey', 'user_id']);
    t.index(['user_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('pushers');
  await knex.schema.dropTableIfExists('push_notifications');
  await knex.schema.dropTableIfExists('push_rules');
}
