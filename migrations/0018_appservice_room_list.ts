import type { Knex } from 'knex';

// Rooms an application service published in its own third-party network's directory (Client-Server API,
// "PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}"), apart from the main list.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('appservice_room_list', (t) => {
    t.string('appservice_id', 255).notNullable();
    t.string('network_id', 255).notNullable();
    t.string('room_id', 255).notNullable();
    t.primary(['appservice_id', 'network_id', 'room_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('appservice_room_list');
}
