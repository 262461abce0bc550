import type { Knex } from 'knex';

// Media of other servers, fetched over federation and cached (spec: Server-Server API, "Content
// Repository"). Files are named by a local filesystem_id, never by the remote's ids.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('remote_media_cache', (t) => {
    t.string('media_origin', 255).notNullable();
    t.string('media_id', 255).notNullable();
    t.string('filesystem_id', 64).notNullable().unique();
    t.string('content_type', 255).notNullable();
    t.text('filename').nullable();
    t.bigInteger('size').notNullable();
    t.string('sha256', 64).notNullable();
    t.bigInteger('created_ts').notNullable();
    // remote_media_lifetime counts from the last download, written at most every few minutes.
    t.bigInteger('last_access_ts').notNullable();
    t.primary(['media_origin', 'media_id']);
    t.index(['last_access_ts']);
  });

  // Thumbnails generated from cached remote media, as media_thumbnails (media_id holds the filesystem_id).
  await knex.schema.createTable('remote_media_thumbnails', (t) => {
    t.string('media_id', 64).notNullable();
    t.integer('width').notNullable();
    t.integer('height').notNullable();
    t.string('method', 16).notNullable();
    t.boolean('animated').notNullable().defaultTo(false);
    t.string('content_type', 64).notNullable();
    t.integer('actual_width').notNullable();
    t.integer('actual_height').notNullable();
    t.bigInteger('size').notNullable();
    t.bigInteger('created_ts').notNullable();
    t.primary(['media_id', 'width', 'height', 'method', 'animated']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('remote_media_thumbnails');
  await knex.schema.dropTableIfExists('remote_media_cache');
}
