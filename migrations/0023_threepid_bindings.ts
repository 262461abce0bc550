import type { Knex } from 'knex';

// Which identity server each of a user's third-party identifiers was bound on through this homeserver
// (Client-Server API, "POST /account/3pid/bind"), so unbinding and deactivation know where to go (Synapse's
// user_threepid_id_server).
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('user_threepid_id_server', (t) => {
    t.string('user_id', 255).notNullable();
    t.string('medium', 64).notNullable();
    t.string('address', 512).notNullable();
    t.string('id_server', 255).notNullable();
    t.primary(['user_id', 'medium', 'address', 'id_server']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('user_threepid_id_server');
}
