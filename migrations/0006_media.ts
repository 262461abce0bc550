import type { Knex } from 'knex';

// The content repository (spec: Client-Server API, "Content repository"). The bytes live under
// media_store_path; these tables hold what we know about them.
export async function up(knex: Knex): Promise<void> {
  // One row per local mxc:// URI. A row made by POST /_matrix/media/v1/create has upload_ts NULL until its
  // bytes arrive (PUT /_matrix/media/v3/upload/{serverName}/{mediaId}); it expires at unused_expires_at.
  await knex.schema.createTable('media', (t) => {
    t.string('media_id', 255).primary();
    t.string('user_id', 255).notNullable();
    t.string('content_type', 255).nullable();
    t.text('filename').nullable();
    t.bigInteger('size').nullable();
    t.string('sha256', 64).nullable();
    t.bigInteger('created_ts').notNullable();
    t.bigInteger('upload_ts').nullable();
    t.bigInteger('unused_expires_at').nullable();
    // Retention counts from the last download, written at most every few minutes.
    t.bigInteger('last_access_ts').nullable();
    t.index(['user_id', 'upload_ts']);
    t.index(['last_access_ts']);
    t.index(['unused_expires_at']);
  });

  // Generated thumbnails, keyed by the target box and method they were made for.
  await knex.schema.createTable('media_thumbnails', (t) => {
    t.string('media_id', 255).notNullable();
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
  await knex.schema.dropTableIfExists('media_thumbnails');
  await knex.schema.dropTableIfExists('media');
}
