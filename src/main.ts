import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, defaultConfig, loadConfigFile } from './config/load.js';
import { parseDuration, type HomeserverConfig } from './config/schema.js';
import { formatSigningKeyFile, generateSigningKey } from './crypto/signing.js';
import { openExportContext } from './export/exportContext.js';
import { exportUserData } from './export/userExport.js';
import { MatrixError } from './errors.js';
import { createHomeserver } from './homeserver.js';
import { exitOnSignals } from './shutdown.js';
import { BackupError, backupSqlite, pgDumpCommand, runPgDump } from './storage/backup.js';
import { describeDatabase } from './storage/database.js';
import { migrationStatus, runMigrations } from './storage/migrations.js';

const USAGE = `Usage: skjol <command> [options]

Commands:
  serve [--config FILE]                     run the homeserver (defaults: server_name localhost, port 8008, SQLite in ./data)
  register-user --user NAME [--password P] [--admin] [--config FILE]
                                            create an account directly in the database
  export-data @user:server [--output-directory DIR] [--config FILE]
                                            write what the server holds about a local user (README: Privacy → Export)
  deactivate-user @user:server [--erase] [--config FILE]
                                            deactivate an account (leave rooms, delete its data); --erase
                                            also purges its messages and profile (README, "Privacy")
  generate-signing-key [--output FILE]      write a new ed25519 signing key in Synapse's format
  backup FILE [--config FILE]               copy the database while the server runs (SQLite: online backup;
                                            PostgreSQL: runs pg_dump, or prints how to)
  migrate [--dry-run] [--config FILE]       bring the database schema up to date (serve does this at start);
                                            --dry-run lists the migrations that would run, changing nothing
  bridge irc --config FILE [--generate-registration]
                                            run the IRC bridge (an application service), or write its registration
`;

function readConfig(path: string | undefined): HomeserverConfig {
  return path ? loadConfigFile(path) : defaultConfig();
}

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } } });
  const config = readConfig(values.config);
  const hs = await createHomeserver(config);
  for (const listener of config.listeners) {
    if (listener.tls && (!listener.tls_certificate_path || !listener.tls_private_key_path)) {
      throw new ConfigError(`listeners: port ${listener.port} has tls: true but no tls_certificate_path / tls_private_key_path`);
    }
    const tls = listener.tls ? { certificatePath: listener.tls_certificate_path!, privateKeyPath: listener.tls_private_key_path! } : undefined;
    for (const address of listener.bind_addresses) {
      const resources = listener.resources.flatMap((r) => r.names);
      const port = await hs.listen(listener.port, address, tls, { x_forwarded: listener.x_forwarded, resources });
      hs.services.logger.info({ address, port, tls: Boolean(tls), type: listener.type, resources }, 'listening');
    }
  }
  hs.services.logger.info({ server_name: config.server_name }, 'Skjól is serving');
  exitOnSignals(hs, hs.services.logger, parseDuration(config.shutdown_timeout));
}

async function registerUser(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      user: { type: 'string', short: 'u' },
      password: { type: 'string', short: 'p' },
      admin: { type: 'boolean', default: false },
    },
  });
  if (!values.user) throw new ConfigError('register-user needs --user NAME');
  const password = values.password ?? process.env.SKJOL_PASSWORD;
  if (!password) throw new ConfigError('register-user needs --password or SKJOL_PASSWORD');
  const config = readConfig(values.config);
  const hs = await createHomeserver({ ...config, log_level: 'warn' });
  try {
    const userId = await hs.services.users.createAccountFromCli(values.user, password, values.admin ?? false);
    process.stdout.write(`Registered ${userId}\n`);
  } finally {
    await hs.close();
  }
}

async function exportData(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'output-directory': { type: 'string', short: 'o' },
    },
  });
  const [userId, ...extra] = positionals;
  if (!userId || extra.length) throw new ConfigError('export-data needs one user id: skjol export-data @user:server --output-directory DIR');
  const config = readConfig(values.config);
  const context = await openExportContext({ ...config, log_level: 'warn' });
  try {
    const result = await exportUserData(context.deps, userId, values['output-directory']);
    process.stdout.write(`Exported ${userId}: ${result.rooms} rooms, ${result.events} events, ${result.media} media files to ${result.directory}\n`);
  } finally {
    await context.close();
  }
}

async function deactivateUser(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, erase: { type: 'boolean', default: false } },
  });
  const [userId] = positionals;
  if (!userId || positionals.length > 1) throw new ConfigError('deactivate-user needs one user id: skjol deactivate-user @user:server [--erase]');
  const config = readConfig(values.config);
  const hs = await createHomeserver({ ...config, log_level: 'warn' });
  try {
    await hs.services.deactivation.deactivate(userId, values.erase ?? false);
    process.stdout.write(`${values.erase ? 'Erased' : 'Deactivated'} ${userId}\n`);
  } catch (err) {
    // A refusal (unknown user, already erased …) is the admin's to read, not a crash.
    if (err instanceof MatrixError) throw new ConfigError(`skjol: ${err.message}`);
    throw err;
  } finally {
    await hs.close();
  }
}

function generateKey(argv: string[]): void {
  const { values } = parseArgs({ args: argv, options: { output: { type: 'string', short: 'o' } } });
  const text = formatSigningKeyFile([generateSigningKey()]);
  if (values.output) writeFileSync(values.output, text, { mode: 0o600 });
  else process.stdout.write(text);
}

async function backup(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string', short: 'c' } } });
  const [target] = positionals;
  if (!target || positionals.length > 1) throw new ConfigError('backup needs one file name: skjol backup FILE [--config FILE]');
  const config = readConfig(values.config);
  const database = config.database;
  try {
    if (database.name === 'sqlite3') {
      const bytes = await backupSqlite(database, target);
      process.stdout.write(`Backed up ${database.args.database} to ${target} (${bytes} bytes)\n`);
    } else {
      const dump = pgDumpCommand(database.args, target);
      const shown = `${dump.env.PGPASSWORD ? 'PGPASSWORD=… ' : ''}${dump.command} ${dump.args.join(' ')}`;
      if (!(await runPgDump(dump))) {
        throw new ConfigError(`pg_dump is not installed (Debian: apt install postgresql-client). Run on a machine that has it:\n  ${shown}`);
      }
      process.stdout.write(`Backed up ${describeDatabase(database)} with: ${shown}\nRestore into an empty database with pg_restore --no-owner --dbname=NAME ${target}\n`);
    }
  } catch (err) {
    if (err instanceof BackupError) throw new ConfigError(`skjol backup: ${err.message}`);
    throw err;
  }
  // The database is not the whole server: without the signing key and the media the copy is incomplete.
  process.stdout.write(`Keep with it: the signing key (${config.signing_key_path}) and the media store (${config.media_store_path}).\n`);
}

async function migrate(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, 'dry-run': { type: 'boolean', default: false } } });
  const config = readConfig(values.config);
  const where = describeDatabase(config.database);
  if (values['dry-run']) {
    const { applied, pending } = await migrationStatus(config.database);
    if (pending.length === 0) {
      process.stdout.write(`${where} is up to date (${applied.length} migrations applied); nothing would run.\n`);
    } else {
      process.stdout.write(`${where}: ${applied.length} migrations applied; these ${pending.length} would run:\n${pending.map((n) => `  ${n}\n`).join('')}`);
    }
    return;
  }
  const ran = await runMigrations(config.database);
  process.stdout.write(ran.length === 0 ? `${where} was already up to date.\n` : `Ran ${ran.length} migrations on ${where}:\n${ran.map((n) => `  ${n}\n`).join('')}`);
}

async function bridge(argv: string[]): Promise<void> {
  const [network, ...rest] = argv;
  if (network !== 'irc') throw new ConfigError(`Unknown bridge "${network ?? ''}": Skjól ships an IRC bridge (skjol bridge irc --config FILE)`);
  // Loaded on demand: the homeserver does not need the bridge's dependencies (crypto wasm, IRC client).
  const { runIrcBridge } = await import('./bridge/irc/main.js');
  return runIrcBridge(rest);
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'register-user':
      return registerUser(rest);
    case 'export-data':
      return exportData(rest);
    case 'deactivate-user':
      return deactivateUser(rest);
    case 'generate-signing-key':
      return generateKey(rest);
    case 'backup':
      return backup(rest);
    case 'migrate':
      return migrate(rest);
    case 'bridge':
      return bridge(rest);
    default:
      process.stdout.write(USAGE);
      process.exitCode = command === undefined || command === 'help' || command === '--help' ? 0 : 2;
  }
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`skjol: ${(err as Error).message}\n`);
  process.exit(1);
});
