import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import type { BridgeConfig } from '../config.js';

type Migration = (db: Knex) => Promise<void>;

// The bridge keeps its own database (never the homeserver's): append new steps at the end.
const MIGRATIONS: Migration[] = [
  async (db) => {
    await db.schema.createTable('portals', (t) => {
      t.string('room_id').primary();
      t.string('network').notNullable();
      t.string('channel').notNullable();
      t.string('channel_key').notNullable();
      t.boolean('encrypted').notNullable().defaultTo(false);
      t.unique(['network', 'channel_key']);
    });
    await db.schema.createTable('ghosts', (t) => {
      t.string('user_id').primary();
      t.string('network').notNullable();
      t.string('nick').notNullable();
    });
    await db.schema.createTable('puppets', (t) => {
      t.string('user_id').notNullable();
      t.string('network').notNullable();
      t.string('nick');
      t.string('sasl_account');
      t.string('sasl_password');
      t.text('channels').notNullable().defaultTo('[]');
      t.boolean('connected').notNullable().defaultTo(false);
      t.primary(['user_id', 'network']);
    });
    await db.schema.createTable('admin_rooms', (t) => {
      t.string('room_id').primary();
      t.string('user_id').notNullable().unique();
    });
    await db.schema.createTable('dm_rooms', (t) => {
      t.string('room_id').primary();
      t.string('network').notNullable();
      t.string('user_id').notNullable();
      t.string('nick_key').notNullable();
      t.string('ghost_id').notNullable();
      t.unique(['network', 'user_id', 'nick_key']);
    });
    await db.schema.createTable('transactions', (t) => {
      t.string('txn_id').primary();
      t.bigInteger('ts').notNullable();
    });
    await db.schema.createTable('outbox', (t) => {
      t.increments('id').primary();
      t.string('event_id').notNullable();
      t.integer('part').notNullable();
      t.string('user_id').notNullable();
      t.string('network').notNullable();
      t.string('command').notNullable();
      t.string('target').notNullable();
      t.text('text').notNullable();
      t.boolean('sent').notNullable().defaultTo(false);
      t.bigInteger('ts').notNullable();
      t.unique(['event_id', 'part']);
    });
    await db.schema.createTable('crypto_snapshots', (t) => {
      t.string('store_name').primary();
      t.binary('data').notNullable();
    });
    await db.schema.createTable('crypto_devices', (t) => {
      t.string('user_id').primary();
      t.string('device_id').notNullable();
    });
  },
  async (db) => {
    // Encrypted events waiting for their room key, kept across restarts (their transaction is answered).
    await db.schema.createTable('undecrypted', (t) => {
      t.string('event_id').primary();
      t.text('event').notNullable();
      t.bigInteger('ts').notNullable();
    });
  },
];

export async function openBridgeDatabase(config: BridgeConfig['database']): Promise<Knex> {
  let db: Knex;
  if (config.engine === 'sqlite') {
    mkdirSync(dirname(config.filename), { recursive: true });
    db = knexFactory({
      client: 'sqlite3',
      connection: { filename: config.filename },
      useNullAsDefault: true,
      pool: { min: 1, max: 1, afterCreate: (conn: { run(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) => conn.run('PRAGMA journal_mode = WAL', (err) => done(err, conn)) },
    });
  } else {
    db = knexFactory({ client: 'pg', connection: config.connection_string, pool: { min: 0, max: 4 } });
  }
  await migrate(db);
  return db;
}

async function migrate(db: Knex): Promise<void> {
  if (!(await db.schema.hasTable('bridge_schema'))) {
    await db.schema.createTable('bridge_schema', (t) => t.integer('version').notNullable());
    await db('bridge_schema').insert({ version: 0 });
  }
  const row = (await db('bridge_schema').first('version')) as { version: number };
  for (let v = Number(row.version); v < MIGRATIONS.length; v++) {
    await db.transaction(async (trx) => {
      await MIGRATIONS[v]!(trx);
      await trx('bridge_schema').update({ version: v + 1 });
    });
  }
}
