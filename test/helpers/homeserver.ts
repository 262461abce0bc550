import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import knexFactory from 'knex';
import pino, { type Logger } from 'pino';
import { inject } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createHomeserver, type Homeserver } from '../../src/homeserver.js';
import { pgTarget } from './pgTarget.js';

export { pgTarget, type PgTarget } from './pgTarget.js';

export type Dialect = 'sqlite' | 'postgres';

/**
 * Databases the integration tests run on: SQLite always, PostgreSQL unless SKJOL_TEST_PG=off or the
 * global setup (test/globalSetup.ts) found it unreachable and said so.
 */
export function testDialects(): Dialect[] {
  if (process.env.SKJOL_TEST_PG === 'off') return ['sqlite'];
  return inject('skjolTestPg') === 'on' ? ['sqlite', 'postgres'] : ['sqlite'];
}

export interface TestServer {
  hs: Homeserver;
  /** Plain HTTP, for the client API. */
  baseUrl: string;
  /** With `tls`: the HTTPS listener other servers reach (the port in `serverName`). */
  federationUrl: string | undefined;
  serverName: string;
  dir: string;
  /** Stops the server; the data stays unless `wipe` (the default) is true. */
  stop(): Promise<void>;
  /** Starts a new process-equivalent on the same database and keys (a restart), with `config` changed if given. */
  restart(config?: Record<string, unknown>): Promise<TestServer>;
  close(): Promise<void>;
}

export interface StartOptions {
  dialect?: Dialect;
  serverName?: string;
  config?: Record<string, unknown>;
  /**
   * Also listen with HTTPS on `port` (default: a free port) with this certificate, as a federation
   * listener; the client API stays on plain HTTP at `baseUrl`. Pair with a serverName carrying that port.
   */
  tls?: { certificatePath: string; privateKeyPath: string; port?: number };
  /** The server's logger (default: silent, or SKJOL_TEST_LOG's level), e.g. to read its log lines. */
  logger?: Logger;
}

/** A port free on 127.0.0.1 right now, so a server name can carry it before the server starts. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a real Skjól on port 0 with its own SQLite file or PostgreSQL schema. */
export async function startHomeserver(options: StartOptions = {}): Promise<TestServer> {
  const dialect = options.dialect ?? 'sqlite';
  const dir = mkdtempSync(join(tmpdir(), 'skjol-test-'));
  const schema = `skjol_t_${randomBytes(6).toString('hex')}`;
  const pg = pgTarget();
  const database =
    dialect === 'sqlite'
      ? { name: 'sqlite3', args: { database: join(dir, 'homeserver.db') } }
      : { name: 'postgres', args: { ...pg, schema, cp_max: 5 } };
  const raw = {
    server_name: options.serverName ?? 'localhost',
    database,
    signing_key_path: join(dir, 'signing.key'),
    media_store_path: join(dir, 'media'),
    rc_enabled: false,
    log_level: 'silent',
    // Test servers federate and push over loopback, which the default ip_range_blacklist refuses.
    ip_range_whitelist: ['127.0.0.0/8', '::1/128'],
    ...options.config,
  };

  const boot = async (): Promise<TestServer> => {
    const config = parseConfig(raw, 'test');
    const logger = options.logger ?? pino({ level: process.env.SKJOL_TEST_LOG ?? 'silent' });
    const hs = await createHomeserver(config, { logger });
    const port = await hs.listen(0, '127.0.0.1');
    const tls = options.tls;
    const tlsPort = tls ? await hs.listen(tls.port ?? 0, '127.0.0.1', tls) : undefined;
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      await hs.close();
    };
    return {
      hs,
      baseUrl: `http://127.0.0.1:${port}`,
      federationUrl: tlsPort === undefined ? undefined : `https://127.0.0.1:${tlsPort}`,
      serverName: config.server_name,
      dir,
      stop,
      async restart(config?: Record<string, unknown>) {
        await stop();
        Object.assign(raw, config);
        return boot();
      },
      async close() {
        await stop();
        if (dialect === 'postgres') {
          const admin = knexFactory({ client: 'pg', connection: pg });
          await admin.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
          await admin.destroy();
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  };
  return boot();
}
