import type { Knex } from 'knex';

// Application service transactions (spec: Application Service API, "Pushing events"): a durable queue per
// service — timeline events, ephemeral events and to-device messages — and each service's delivery state
// (backoff, the transaction in flight). Same shape as the federation outbox (0011): a transaction's rows carry
// its txn_id, so a retry, also after a restart, resends exactly the same transaction.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('appservice_queue', (t) => {
    t.bigIncrements('id').primary();
    t.string('service_id', 255).notNullable();
    t.string('kind', 16).notNullable(); // 'event' | 'ephemeral' | 'to_device' | 'device_list'
    t.text('payload').notNullable();
    t.bigInteger('queued_ts').notNullable();
    t.string('txn_id', 64).nullable();
    t.index(['service_id', 'id'], 'appservice_queue_service_idx');
  });
  await knex.schema.createTable('appservice_state', (t) => {
    t.string('service_id', 255).primary();
    t.integer('retry_count').notNullable().defaultTo(0);
    t.bigInteger('next_attempt_ts').notNullable().defaultTo(0);
    t.string('pending_txn_id', 64).nullable();
    t.bigInteger('last_success_ts').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('appservice_state');
  await knex.schema.dropTableIfExists('appservice_queue');
}
