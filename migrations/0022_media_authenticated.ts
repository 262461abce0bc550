import type { Knex } from 'knex';

// enable_authenticated_media (MSC3916, as Synapse): each local and cached remote item records whether it was
// stored while the setting was on; such media is never served on the legacy unauthenticated paths. Rows
// from before this migration are false: they stay reachable as they were.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('media', (t) => {
    t.boolean('authenticated').notNullable().defaultTo(false);
  });
  await knex.schema.alterTable('remote_media_cache', (t) => {
    t.boolean('authenticated').notNullable().defaultTo(false);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('remote_media_cache', (t) => t.dropColumn('authenticated'));
  await knex.schema.alterTable('media', (t) => t.dropColumn('authenticated'));
}
