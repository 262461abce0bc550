import type { Knex } from 'knex';

// Outbound federation (ARCHITECTURE.md, "Outbound work and inbound federation"): a durable outbox of PDUs and
// EDUs per destination server, the delivery state of each destination (backoff, the transaction in flight),
// and the transactions received from other servers (spec: "Transactions" — a retried txnId gets the same
// answer without being processed again).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('federation_outbox', (t) => {
    t.bigIncrements('id').primary();
    t.string('destination', 255).notNullable();
    t.string('kind', 8).notNullable(); // 'pdu' | 'edu'
    t.text('payload').notNullable();
    t.bigInteger('queued_ts').notNullable();
    // Set when the row joins a transaction; a retry resends exactly the rows carrying this id.
    t.string('txn_id', 64).nullable();
    t.index(['destination', 'id'], 'federation_outbox_destination_idx');
  });
  await knex.schema.createTable('federation_destinations', (t) => {
    t.string('destination', 255).primary();
    t.integer('retry_count').notNullable().defaultTo(0);
    t.bigInteger('next_attempt_ts').notNullable().defaultTo(0);
    // The transaction being delivered (its rows carry the same txn_id), null when none.
    t.string('pending_txn_id', 64).nullable();
    t.bigInteger('last_success_ts').nullable();
  });
  await knex.schema.createTable('federation_inbound_txns', (t) => {
    t.string('origin', 255).notNullable();
    t.string('txn_id', 255).notNullable();
    t.text('response').notNullable();
    t.bigInteger('received_ts').notNullable();
    t.primary(['origin', 'txn_id']);
    t.index(['received_ts'], 'federation_inbound_txns_ts_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('federation_inbound_txns');
  await knex.schema.dropTableIfExists('federation_destinations');
  await knex.schema.dropTableIfExists('federation_outbox');
}
