import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import pino from 'pino';
import { deleteDatabases } from '../../../src/bridge/crypto/index.js';
import { parseBridgeConfig, type BridgeConfig } from '../../../src/bridge/irc/config.js';
import { startIrcBridge, type IrcBridge } from '../../../src/bridge/irc/bridge.js';
import { writeRegistration } from '../../../src/bridge/irc/registration.js';
import { freePort, pgTarget, startHomeserver, type TestServer } from '../../helpers/homeserver.js';
import { request } from '../../helpers/http.js';
import { registerUser, type TestUser } from '../../helpers/users.js';
import { startNgircd, type IrcTestServer } from './ngircd.js';

export const NETWORK = 'test';

export interface BridgeFixtureOptions {
  encryption?: boolean;
  /** Where the bridge keeps its own state. */
  bridgeDatabase?: 'sqlite' | 'postgres';
  /** The bridge reaches ngircd over TLS, trusting its self-signed certificate. */
  ircTls?: boolean;
  /** Extra keys for the network's config (channels, flood, max_lines …). */
  network?: Record<string, unknown>;
  /** Extra top-level bridge config (media_url, media_proxy …), given the appservice port. */
  config?: (appservicePort: number) => Record<string, unknown>;
  /** The IRC server to bridge to; a private ngircd by default (see inspircd.ts for InspIRCd + atheme). */
  ircServer?: () => Promise<IrcTestServer>;
}

export interface BridgeFixture {
  irc: IrcTestServer;
  hs: TestServer;
  bridge: IrcBridge;
  config: BridgeConfig;
  dir: string;
  /** Stops the bridge process-equivalent (its database and crypto store stay). */
  stopBridge(): Promise<void>;
  /** Starts a new bridge on the same config, database and registration. */
  startBridge(): Promise<void>;
  close(): Promise<void>;
}

const quiet = () => pino({ level: process.env.SKJOL_TEST_BRIDGE_LOG ?? 'silent' });

/** A real ngircd, a real Skjól with the bridge's registration, and the bridge itself, all on loopback. */
export async function startBridgeFixture(options: BridgeFixtureOptions = {}): Promise<BridgeFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'skjol-bridge-'));
  const irc = options.ircServer ? await options.ircServer() : await startNgircd({ tls: options.ircTls });
  const asPort = await freePort();
  let pgSchema: string | undefined;
  let database: Record<string, unknown> = { engine: 'sqlite', filename: join(dir, 'bridge.db') };
  if (options.bridgeDatabase === 'postgres') {
    const pg = pgTarget();
    pgSchema = `skjol_bridge_${randomBytes(5).toString('hex')}`;
    const admin = knexFactory({ client: 'pg', connection: pg });
    await admin.raw('CREATE SCHEMA ??', [pgSchema]);
    await admin.destroy();
    database = { engine: 'postgres', connection_string: `postgres://${pg.user}@${pg.host}:${pg.port}/${pg.database}?options=${encodeURIComponent(`-c search_path=${pgSchema}`)}` };
  }
  // The homeserver is started on a port we do not know yet, so the config is completed afterwards.
  const raw = {
    homeserver: { url: 'http://127.0.0.1:1', domain: 'localhost' },
    appservice: { port: asPort, bind_address: '127.0.0.1', registration: join(dir, 'registration.yaml') },
    database,
    encryption: { enabled: options.encryption ?? false, passphrase: 'a test passphrase that is long' },
    networks: {
      [NETWORK]: {
        name: 'Test IRC',
        host: irc.host,
        ...(options.ircTls ? { port: irc.tlsPort, tls: true, tls_ca_file: irc.caFile } : { port: irc.port }),
        flood: { burst: 20, interval_ms: 50 },
        ...options.network,
      },
    },
    log_level: 'silent',
    ...options.config?.(asPort),
  };
  const config = parseBridgeConfig(raw, 'test', dir);
  writeRegistration(config);
  // These tests' Matrix users are raw HTTP clients without crypto: their direct rooms stay unencrypted
  // (Skjól's default encrypts them; encrypted bridging is tested in irc-encrypted.test.ts).
  const hs = await startHomeserver({
    config: { app_service_config_files: [config.appservice.registration], enable_registration: true, encryption_enabled_by_default_for_room_type: 'off' },
  });
  config.homeserver.url = hs.baseUrl;
  let bridge: IrcBridge | undefined = await startIrcBridge(config, quiet());
  const fixture: BridgeFixture = {
    irc,
    hs,
    get bridge() {
      if (!bridge) throw new Error('bridge is stopped');
      return bridge;
    },
    config,
    dir,
    async stopBridge() {
      await bridge?.close();
      bridge = undefined;
      // As after a real process exit, nothing of the crypto stores stays in memory: only the database has them.
      if (config.encryption.enabled) await deleteDatabases('skjol-bridge-crypto');
    },
    async startBridge() {
      bridge = await startIrcBridge(config, quiet());
    },
    async close() {
      await bridge?.close().catch(() => undefined);
      await hs.close().catch(() => undefined);
      await irc.close().catch(() => undefined);
      if (pgSchema) {
        const admin = knexFactory({ client: 'pg', connection: pgTarget() });
        await admin.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [pgSchema]).catch(() => undefined);
        await admin.destroy();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}

type Json = Record<string, any>;

export const enc = encodeURIComponent;

export async function matrixUser(hs: TestServer, name: string, displayname?: string): Promise<TestUser> {
  const user = await registerUser(hs.baseUrl, name);
  if (displayname) await api(hs, user, 'PUT', `/_matrix/client/v3/profile/${enc(user.userId)}/displayname`, { displayname });
  return user;
}

export async function api(hs: TestServer, user: TestUser, method: string, path: string, body?: unknown): Promise<Json> {
  const res = await request(hs.baseUrl, method, path, { token: user.accessToken, body });
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

let txn = 0;
export async function sendMessage(hs: TestServer, user: TestUser, roomId: string, content: Json): Promise<string> {
  const r = await api(hs, user, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${Date.now()}-${txn++}`, content);
  return r.event_id as string;
}

export async function eventually<T>(probe: () => Promise<T | undefined | false | null>, what: string, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The room's timeline as `user` sees it, oldest first. */
export async function timeline(hs: TestServer, user: TestUser, roomId: string): Promise<Json[]> {
  const r = await api(hs, user, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=200`);
  return (r.chunk as Json[]).reverse();
}

export async function waitForEvent(hs: TestServer, user: TestUser, roomId: string, match: (e: Json) => boolean, what: string, ms?: number): Promise<Json> {
  return eventually(async () => (await timeline(hs, user, roomId)).find(match), what, ms);
}

export async function joinedMembers(hs: TestServer, user: TestUser, roomId: string): Promise<string[]> {
  const r = await api(hs, user, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`);
  return Object.keys(r.joined as Json);
}

/** Invites to `user` that their /sync shows, as room ids. */
export async function invites(hs: TestServer, user: TestUser): Promise<Array<{ roomId: string; state: Json[] }>> {
  const r = await api(hs, user, 'GET', '/_matrix/client/v3/sync?timeout=0');
  return Object.entries((r.rooms?.invite ?? {}) as Record<string, Json>).map(([roomId, v]) => ({ roomId, state: v.invite_state?.events ?? [] }));
}
