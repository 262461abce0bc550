import { existsSync } from 'node:fs';
import type { HomeserverConfig } from '../config/schema.js';
import { migrationSource } from '../../migrations/index.js';
import { connectDatabase, migrateToLatest } from './database.js';

export interface MigrationStatus {
  applied: string[];
  pending: string[];
}

// knex records applied migrations here (its default table name).
const MIGRATIONS_TABLE = 'knex_migrations';

async function allMigrations(): Promise<string[]> {
  return (await migrationSource.getMigrations([])).map((m) => migrationSource.getMigrationName(m));
}

/**
 * Which migrations the configured database has, and which the next start would run. Read-only: unlike
 * knex's migrate.list it creates no table, and a SQLite file that does not exist is not created.
 */
export async function migrationStatus(config: HomeserverConfig['database']): Promise<MigrationStatus> {
  const all = await allMigrations();
  if (config.name === 'sqlite3' && config.args.database !== ':memory:' && !existsSync(config.args.database)) {
    return { applied: [], pending: all };
  }
  const knex = connectDatabase(config);
  try {
    const applied = (await knex.schema.hasTable(MIGRATIONS_TABLE))
      ? (await knex(MIGRATIONS_TABLE).select('name').orderBy('id')).map((r: { name: string }) => r.name)
      : [];
    const done = new Set(applied);
    return { applied, pending: all.filter((name) => !done.has(name)) };
  } finally {
    await knex.destroy();
  }
}

/** Runs the pending migrations, as `skjol serve` does at start, and returns their names. */
export async function runMigrations(config: HomeserverConfig['database']): Promise<string[]> {
  const knex = connectDatabase(config);
  try {
    return await migrateToLatest(knex, config);
  } finally {
    await knex.destroy();
  }
}
