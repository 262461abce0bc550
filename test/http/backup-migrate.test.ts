import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import knexFactory from 'knex';
import { afterEach, describe, expect, it } from 'vitest';
import { migrationSource } from '../../migrations/index.js';
import { ChildServer } from '../helpers/childServer.js';
import { pgTarget, testDialects, type Dialect } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const run = promisify(execFile);
// Each command is a new process, as the admin runs it.
const skjol = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args]);
// Several processes start one after another here: allow for a loaded machine.
const SLOW = 300_000;
const hasPgDump = await run('pg_dump', ['--version']).then(() => true, () => false);

const V3 = '/_matrix/client/v3';

/** Sends numbered messages one after another until stopped; `acked` counts those the server answered 200. */
function writer(baseUrl: string, user: TestUser, roomId: string) {
  let stopped = false;
  let acked = 0;
  const done = (async () => {
    for (let i = 0; !stopped; i++) {
      const res = await request(baseUrl, 'PUT', `${V3}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/w${i}`, {
        token: user.accessToken,
        body: { msgtype: 'm.text', body: `message ${i}` },
      });
      expect(res.status).toBe(200);
      acked = i + 1;
    }
  })();
  return {
    acked: () => acked,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

/** The bodies of the room's text messages, oldest first, read as the user would page back through history. */
async function readMessages(baseUrl: string, token: string, roomId: string): Promise<string[]> {
  const bodies: string[] = [];
  let from: string | undefined;
  for (;;) {
    const q = new URLSearchParams({ dir: 'b', limit: '100', ...(from ? { from } : {}) });
    const res = await request(baseUrl, 'GET', `${V3}/rooms/${encodeURIComponent(roomId)}/messages?${q}`, { token });
    expect(res.status).toBe(200);
    for (const e of res.body.chunk) if (e.type === 'm.room.message') bodies.unshift(e.content.body);
    if (!res.body.end || res.body.chunk.length === 0) return bodies;
    from = res.body.end;
  }
}

async function login(baseUrl: string, user: TestUser): Promise<string> {
  const res = await request(baseUrl, 'POST', `${V3}/login`, {
    body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: user.userId }, password: user.password },
  });
  expect(res.status).toBe(200);
  return res.body.access_token;
}

function databaseConfig(dialect: Dialect, dir: string, schema: string, database?: string) {
  return dialect === 'sqlite'
    ? { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } }
    : { name: 'postgres', args: { ...pgTarget(), ...(database ? { database } : {}), schema, cp_max: 5 } };
}

describe.each(testDialects())('skjol backup while the server writes, and a restore, on %s', (dialect) => {
  const dirs: string[] = [];
  const servers: ChildServer[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.stop();
    for (const c of cleanups.splice(0)) await c();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it.skipIf(dialect === 'postgres' && !hasPgDump)('copies every message acknowledged before the backup began, and a fresh server serves them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skjol-backup-'));
    dirs.push(dir);
    const schema = `skjol_bk_${randomBytes(5).toString('hex')}`;
    const admin = knexFactory({ client: 'pg', connection: pgTarget() });
    const restoredDb = `skjol_restore_${randomBytes(5).toString('hex')}`;
    cleanups.push(async () => {
      if (dialect === 'postgres') {
        await admin.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
        await admin.raw('DROP DATABASE IF EXISTS ??', [restoredDb]);
      }
      await admin.destroy();
    });
    const server = await ChildServer.start(dir, { database: databaseConfig(dialect, dir, schema), log_level: 'warn' });
    servers.push(server);
    const alice = await registerUser(server.baseUrl, 'alice');
    const roomId: string = (await request(server.baseUrl, 'POST', `${V3}/createRoom`, { token: alice.accessToken, body: {} })).body.room_id;

    const w = writer(server.baseUrl, alice, roomId);
    while (w.acked() < 20) await new Promise((r) => setTimeout(r, 20));
    const ackedBefore = w.acked();
    const target = join(dir, dialect === 'sqlite' ? 'backup.db' : 'backup.dump');
    const { stdout } = await skjol('backup', target, '--config', server.configPath);
    const ackedDuring = w.acked();
    await w.stop();
    expect(ackedDuring).toBeGreaterThan(ackedBefore); // the server kept writing while the copy was made
    expect(stdout).toMatch(/^Backed up /);
    expect(stdout).toMatch(/signing key/);
    if (dialect === 'sqlite') expect(statSync(target).mode & 0o077).toBe(0);

    // Restore: a new directory with the backup, the same signing key, a new process.
    const restoreDir = mkdtempSync(join(tmpdir(), 'skjol-restore-'));
    dirs.push(restoreDir);
    copyFileSync(join(dir, 'signing.key'), join(restoreDir, 'signing.key'));
    if (dialect === 'sqlite') {
      copyFileSync(target, join(restoreDir, 'homeserver.db'));
    } else {
      await admin.raw('CREATE DATABASE ??', [restoredDb]);
      const pg = pgTarget();
      await run('pg_restore', ['--no-owner', `--host=${pg.host}`, `--port=${pg.port}`, `--username=${pg.user}`, `--dbname=${restoredDb}`, target]);
    }
    await server.stop();
    const restored = await ChildServer.start(restoreDir, { database: databaseConfig(dialect, restoreDir, schema, restoredDb), log_level: 'warn' });
    servers.push(restored);
    const token = await login(restored.baseUrl, alice);
    const bodies = await readMessages(restored.baseUrl, token, roomId);
    // A consistent snapshot: everything acknowledged before, in order, with no gap, nothing half-written.
    expect(bodies.length).toBeGreaterThanOrEqual(ackedBefore);
    expect(bodies).toEqual(Array.from({ length: bodies.length }, (_, i) => `message ${i}`));
    const more = await request(restored.baseUrl, 'PUT', `${V3}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/after`, {
      token,
      body: { msgtype: 'm.text', body: 'after the restore' },
    });
    expect(more.status).toBe(200);
  }, SLOW);
});

describe('skjol backup refusals', () => {
  it('refuses to overwrite an existing file and names it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skjol-backup-'));
    try {
      const server = await ChildServer.start(dir, { log_level: 'warn' });
      await server.stop();
      const err = await skjol('backup', server.configPath, '--config', server.configPath).catch((e: { code: number; stderr: string }) => e);
      expect((err as { code: number }).code).toBe(2);
      expect((err as { stderr: string }).stderr).toMatch(/homeserver\.yaml exists/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, SLOW);
});

describe.each(testDialects())('skjol migrate on an old database, on %s', (dialect) => {
  it('--dry-run lists the pending migrations in order and changes nothing; migrate runs them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skjol-migrate-'));
    const schema = `skjol_mg_${randomBytes(5).toString('hex')}`;
    const database = databaseConfig(dialect, dir, schema);
    const knex =
      dialect === 'sqlite'
        ? knexFactory({ client: 'sqlite3', connection: { filename: join(dir, 'homeserver.db') }, useNullAsDefault: true })
        : knexFactory({ client: 'pg', connection: pgTarget(), searchPath: [schema] });
    try {
      if (dialect === 'postgres') await knex.raw('CREATE SCHEMA ??', [schema]);
      // An old Skjól: the database stops at the tenth migration.
      for (let i = 0; i < 10; i++) await knex.migrate.up({ migrationSource });
      const all = (await migrationSource.getMigrations([])).map((m) => migrationSource.getMigrationName(m));
      const configPath = join(dir, 'hs.yaml');
      const { writeFileSync } = await import('node:fs');
      writeFileSync(configPath, JSON.stringify({ server_name: 'localhost', database, signing_key_path: join(dir, 'signing.key'), log_level: 'warn' }));

      const dry = await skjol('migrate', '--dry-run', '--config', configPath);
      expect(dry.stdout).toContain(`10 migrations applied; these ${all.length - 10} would run:`);
      expect(dry.stdout.trim().split('\n').slice(1).map((l) => l.trim())).toEqual(all.slice(10));
      expect(await knex('knex_migrations').count({ n: '*' }).first()).toEqual({ n: dialect === 'sqlite' ? 10 : '10' });

      const migrated = await skjol('migrate', '--config', configPath);
      expect(migrated.stdout).toContain(`Ran ${all.length - 10} migrations`);
      const again = await skjol('migrate', '--dry-run', '--config', configPath);
      expect(again.stdout).toContain(`up to date (${all.length} migrations applied); nothing would run`);
    } finally {
      if (dialect === 'postgres') await knex.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
      await knex.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  }, SLOW);

  it.runIf(dialect === 'sqlite')('--dry-run on a database file that does not exist yet lists every migration and creates no file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skjol-migrate-'));
    try {
      const configPath = join(dir, 'hs.yaml');
      const { writeFileSync, existsSync } = await import('node:fs');
      writeFileSync(configPath, JSON.stringify({ server_name: 'localhost', database: databaseConfig('sqlite', dir, ''), log_level: 'warn' }));
      const dry = await skjol('migrate', '--dry-run', '--config', configPath);
      expect(dry.stdout).toMatch(/0 migrations applied; these \d+ would run:\n {2}0001_initial\n/);
      expect(existsSync(join(dir, 'homeserver.db'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
