import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, statSync, unlinkSync } from 'node:fs';
import type { HomeserverConfig } from '../config/schema.js';
import { connectDatabase } from './database.js';

type DatabaseConfig = HomeserverConfig['database'];
type PostgresArgs = Extract<DatabaseConfig, { name: 'postgres' | 'psycopg2' }>['args'];

export class BackupError extends Error {}

/**
 * A consistent copy of the SQLite database while the server keeps writing: VACUUM INTO reads one
 * snapshot in a read transaction (WAL lets the writer go on) and writes a compacted file, 0600 like the original.
 */
export async function backupSqlite(config: Extract<DatabaseConfig, { name: 'sqlite3' }>, target: string): Promise<number> {
  if (!existsSync(config.args.database)) throw new BackupError(`no database at ${config.args.database}`);
  if (existsSync(target)) throw new BackupError(`${target} exists; choose a new file name`);
  // VACUUM INTO accepts an empty existing file, so the mode is set before any data is written.
  closeSync(openSync(target, 'wx', 0o600));
  const knex = connectDatabase(config);
  try {
    await knex.raw('VACUUM INTO ?', [target]);
  } catch (err) {
    unlinkSync(target);
    throw err;
  } finally {
    await knex.destroy();
  }
  await checkSqliteFile(target);
  return statSync(target).size;
}

async function checkSqliteFile(path: string): Promise<void> {
  const knex = connectDatabase({ name: 'sqlite3', args: { database: path } });
  try {
    const rows = (await knex.raw('PRAGMA quick_check')) as Array<{ quick_check: string }>;
    if (rows[0]?.quick_check !== 'ok') throw new BackupError(`the backup ${path} failed its integrity check: ${rows[0]?.quick_check}`);
  } finally {
    await knex.destroy();
  }
}

export interface PgDump {
  command: string;
  args: string[];
  /** PGPASSWORD when the config has a password: never on the command line, where `ps` shows it. */
  env: Record<string, string>;
}

/** The pg_dump call for the configured PostgreSQL: custom format (pg_restore reads it), only Skjól's schema. */
export function pgDumpCommand(args: PostgresArgs, target: string): PgDump {
  const dump = [
    '--format=custom',
    `--file=${target}`,
    `--host=${args.host ?? '127.0.0.1'}`,
    `--port=${args.port ?? 5432}`,
    `--username=${args.user ?? 'postgres'}`,
    `--dbname=${args.database ?? args.dbname ?? 'postgres'}`,
    ...(args.schema ? [`--schema=${args.schema}`] : []),
  ];
  return { command: 'pg_dump', args: dump, env: args.password ? { PGPASSWORD: args.password } : {} };
}

/** Runs pg_dump; resolves false when pg_dump is not installed, so the caller can explain instead. */
export function runPgDump(dump: PgDump): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(dump.command, dump.args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...dump.env } });
    child.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? resolve(false) : reject(err)));
    child.once('exit', (code) => (code === 0 ? resolve(true) : reject(new BackupError(`pg_dump exited with ${code}`))));
  });
}
