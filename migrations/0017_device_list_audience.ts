import type { Knex } from 'knex';

// A device-list change seen by one user only (spec: "Cross-signing"): a new user-signing key, or a signature
// a user made on someone else's master key, tells the signer's own devices to re-fetch, nobody else.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('device_list_changes', (t) => {
    t.string('only_for_user_id', 255).nullable();
    t.index(['only_for_user_id', 'stream_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('device_list_changes', (t) => {
    t.dropIndex(['only_for_user_id', 'stream_id']);
    t.dropColumn('only_for_user_id');
  });
}
