import type { Knex } from 'knex';

// MSC2753 peeks: the world-readable rooms a device follows in /sync without joining. `id` is the peek's
// position in the /sync `peeks` topic: a peek newer than a token's position comes down as a whole room.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('room_peeks', (t) => {
    t.increments('id').primary();
    t.string('user_id', 255).notNullable();
    t.string('device_id', 255).notNullable();
    t.string('room_id', 255).notNullable();
    t.bigInteger('created_ts').notNullable();
    t.unique(['user_id', 'device_id', 'room_id']);
    t.index(['room_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('room_peeks');
}
