import { dirname } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import type { HomeserverConfig } from '../config/schema.js';
import { migrationSource } from '../../migrations/index.js';
import { ensurePrivateDir, ensurePrivateFile, tightenFile } from './fileModes.js';

export type Db = Knex | Knex.Transaction;

export interface Database {
  knex: Knex;
  dialect: 'sqlite' | 'postgres';
  /**
   * A transaction that writes to a stream (events, account data, to-device …). Such transactions are
   * serialised — by the single SQLite connection, or a PostgreSQL advisory lock across all processes —
   * so stream positions commit in order and /sync never skips one.
   */
  write<T>(fn: (trx: Knex.Transaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const STREAM_WRITE_LOCK = 0x736b6a6f; // 'skjo'

// SQLite runs with one connection: that connection is the single writer queue, so transactions never
// see SQLITE_BUSY and the ordering of stream positions is the commit order. secure_delete zeroes what deletes
// and updates free, so erased or purged text does not stay readable in free pages of the file.
function sqliteKnex(path: string): Knex {
  if (path !== ':memory:') protectSqliteFiles(path);
  return knexFactory({
    client: 'sqlite3',
    connection: { filename: path },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      afterCreate(conn: { exec(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
        conn.exec(
          'PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA secure_delete = ON;',
          (err) => done(err, conn),
        );
      },
    },
    acquireConnectionTimeout: 120_000,
  });
}

// The database holds password hashes and tokens: owner-only. SQLite gives its -wal and -shm files the
// database file's mode, so creating that one 0600 covers them; older, looser files are tightened.
function protectSqliteFiles(path: string): void {
  ensurePrivateDir(dirname(path));
  ensurePrivateFile(path);
  for (const suffix of ['', '-wal', '-shm', '-journal']) tightenFile(path + suffix);
}

function postgresKnex(args: Extract<HomeserverConfig['database'], { name: 'postgres' | 'psycopg2' }>['args']): Knex {
  return knexFactory({
    client: 'pg',
    connection: {
      host: args.host ?? '127.0.0.1',
      port: args.port ?? 5432,
      user: args.user ?? 'postgres',
      password: args.password,
      database: args.database ?? args.dbname ?? 'postgres',
    },
    searchPath: args.schema ? [args.schema] : undefined,
    pool: { min: args.cp_min ?? 1, max: args.cp_max ?? 10 },
  });
}

/** Where the data lives, for messages: the SQLite file, or the PostgreSQL database and schema. */
export function describeDatabase(config: HomeserverConfig['database']): string {
  if (config.name === 'sqlite3') return config.args.database;
  const { host = '127.0.0.1', port = 5432, schema } = config.args;
  const name = config.args.database ?? config.args.dbname ?? 'postgres';
  return `postgres://${host}:${port}/${name}${schema ? ` schema ${schema}` : ''}`;
}

/** A connection to the configured database as it is, without migrating it (`skjol migrate --dry-run`). */
export function connectDatabase(config: HomeserverConfig['database']): Knex {
  return config.name === 'sqlite3' ? sqliteKnex(config.args.database) : postgresKnex(config.args);
}

/** Runs the pending migrations (creating the PostgreSQL schema if needed); returns their names. */
export async function migrateToLatest(knex: Knex, config: HomeserverConfig['database']): Promise<string[]> {
  if (config.name !== 'sqlite3' && config.args.schema) await knex.raw('CREATE SCHEMA IF NOT EXISTS ??', [config.args.schema]);
  const [, ran] = (await knex.migrate.latest({ migrationSource })) as [number, string[]];
  return ran;
}

/** Connects and brings the schema up to date: every pending migration runs at start. */
export async function openDatabase(config: HomeserverConfig['database']): Promise<Database> {
  const knex = connectDatabase(config);
  const dialect = config.name === 'sqlite3' ? 'sqlite' : 'postgres';
  await migrateToLatest(knex, config);
  const write = <T>(fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> =>
    knex.transaction(async (trx) => {
      if (dialect === 'postgres') await trx.raw('SELECT pg_advisory_xact_lock(?)', [STREAM_WRITE_LOCK]);
      return fn(trx);
    });
  return { knex, dialect, write, close: () => knex.destroy() };
}
