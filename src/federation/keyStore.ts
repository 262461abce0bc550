/**
 * Server signing keys (spec: Server-Server API, "Retrieving server keys"): our own published keys, and
 * remote servers' keys fetched from trusted notaries or directly, checked against the origin's own
 * signature, stored, and kept in a bounded memory cache. Answers "which public key did server S use
 * under key ID K at time T" for request authentication and, later, event signatures.
 */
import type { Logger } from 'pino';
import { signJson, verifyJsonSignature, type SigningKey } from '../crypto/signing.js';
import type { Database } from '../storage/database.js';
import {
  getServerKey,
  getServerKeyResponses,
  putServerKeyResponses,
  upsertServerKeys,
  type ServerKeyRow,
} from '../storage/repositories/serverKeys.js';
import { LruCache } from '../util/lru.js';
import type { FederationClient } from './client.js';
import { isValidServerName } from './serverName.js';
import { own } from '../util/dict.js';

/** A server's key response (spec definitions/keys.yaml). */
export interface ServerKeys {
  server_name: string;
  valid_until_ts: number;
  verify_keys: Record<string, { key: string }>;
  old_verify_keys?: Record<string, { key: string; expired_ts: number }>;
  signatures?: Record<string, Record<string, string>>;
  [extra: string]: unknown;
}

export interface TrustedKeyServer {
  server_name: string;
  /** Keys the notary signs with; when absent its keys are fetched from it directly over TLS. */
  verify_keys?: Record<string, string> | undefined;
}

export interface OldSigningKey {
  key: string;
  expired_ts: number;
}

export interface KeyStoreDeps {
  db: Database;
  serverName: string;
  signingKey: SigningKey;
  oldSigningKeys: Record<string, OldSigningKey>;
  clock: { now(): number };
  logger: Logger;
  client: FederationClient;
  trustedKeyServers: readonly TrustedKeyServer[];
  /** key_refresh_interval: how long our published keys are valid for. */
  keyRefreshIntervalMs: number;
  cacheSize?: number;
  /** Minimum time between two fetches of one server's keys (a missing key ID cannot make us hammer it). */
  minRefetchIntervalMs?: number;
}

interface CachedKey {
  key: string;
  validUntilTs: number;
  expiredTs: number | null;
}

/** Keys are trusted for at most this long after fetching, whatever valid_until_ts says (spec: keys.yaml). */
export const MAX_KEY_VALIDITY_MS = 7 * 24 * 3600_000;
const KEY_ID_RE = /^ed25519:[A-Za-z0-9_]+$/;
const MAX_KEYS_PER_RESPONSE = 64;
// A notary answers from what it has once an origin is this slow; the fetch goes on and stores what it gets.
const NOTARY_WAIT_MS = 3_000;

export class KeyResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyResponseError';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks a key response claimed to come from `serverName`: shape, key IDs, and that it carries at least one
 * signature by one of its own verify_keys and no bad one. Returns the rows to store and the response with
 * only the origin's signatures (notaries' are dropped). Throws KeyResponseError.
 */
export function checkServerKeys(json: unknown, serverName: string, fetchedTs: number): { keys: ServerKeys; rows: ServerKeyRow[] } {
  if (!isObject(json)) throw new KeyResponseError('not an object');
  if (json.server_name !== serverName) throw new KeyResponseError('server_name does not match');
  if (!Number.isSafeInteger(json.valid_until_ts)) throw new KeyResponseError('valid_until_ts missing');
  const verifyKeys = json.verify_keys;
  if (!isObject(verifyKeys)) throw new KeyResponseError('verify_keys missing');
  const oldKeys = json.old_verify_keys === undefined ? {} : json.old_verify_keys;
  if (!isObject(oldKeys)) throw new KeyResponseError('old_verify_keys is not an object');
  if (Object.keys(verifyKeys).length + Object.keys(oldKeys).length > MAX_KEYS_PER_RESPONSE) throw new KeyResponseError('too many keys');
  const sigs = isObject(json.signatures) ? json.signatures[serverName] : undefined;
  if (!isObject(sigs)) throw new KeyResponseError('not signed by the origin');

  const validUntil = Math.min(json.valid_until_ts as number, fetchedTs + MAX_KEY_VALIDITY_MS);
  const rows: ServerKeyRow[] = [];
  let verified = 0;
  for (const [keyId, value] of Object.entries(verifyKeys)) {
    if (!KEY_ID_RE.test(keyId)) continue; // other algorithms: not ours to check
    if (!isObject(value) || typeof value.key !== 'string') throw new KeyResponseError(`bad verify key ${keyId}`);
    if (Object.hasOwn(sigs, keyId)) {
      if (!verifyJsonSignature(json, serverName, keyId, value.key)) throw new KeyResponseError(`bad signature by ${keyId}`);
      verified++;
    }
    rows.push({ server_name: serverName, key_id: keyId, verify_key: value.key, valid_until_ts: validUntil, expired_ts: null, fetched_ts: fetchedTs });
  }
  if (verified === 0) throw new KeyResponseError('not signed by any of its verify_keys');
  for (const [keyId, value] of Object.entries(oldKeys)) {
    if (!KEY_ID_RE.test(keyId) || Object.hasOwn(verifyKeys, keyId)) continue;
    if (!isObject(value) || typeof value.key !== 'string' || !Number.isSafeInteger(value.expired_ts)) {
      throw new KeyResponseError(`bad old verify key ${keyId}`);
    }
    const expired = value.expired_ts as number;
    rows.push({ server_name: serverName, key_id: keyId, verify_key: value.key, valid_until_ts: expired, expired_ts: expired, fetched_ts: fetchedTs });
  }
  const keys = { ...json, signatures: { [serverName]: { ...sigs } } } as ServerKeys;
  return { keys, rows };
}

export class KeyStore {
  private readonly cache: LruCache<string, CachedKey>;
  private readonly lastFetch: LruCache<string, number>;
  private readonly inFlight = new Map<string, Promise<ServerKeys | undefined>>();
  private readonly minRefetchMs: number;

  constructor(private readonly deps: KeyStoreDeps) {
    this.cache = new LruCache(deps.cacheSize ?? 4096);
    this.lastFetch = new LruCache(deps.cacheSize ?? 4096);
    this.minRefetchMs = deps.minRefetchIntervalMs ?? 30_000;
  }

  /** GET /_matrix/key/v2/server: our keys, valid for key_refresh_interval, signed by the current key. */
  ownServerKeys(): ServerKeys {
    const { serverName, signingKey, oldSigningKeys } = this.deps;
    const body: ServerKeys = {
      server_name: serverName,
      valid_until_ts: this.deps.clock.now() + this.deps.keyRefreshIntervalMs,
      verify_keys: { [signingKey.keyId]: { key: signingKey.publicKey } },
      old_verify_keys: Object.fromEntries(
        Object.entries(oldSigningKeys)
          .filter(([id]) => id !== signingKey.keyId)
          .map(([id, k]) => [id, { key: k.key, expired_ts: k.expired_ts }]),
      ),
    };
    return signJson(body, serverName, signingKey);
  }

  /**
   * The unpadded-base64 public key `serverName` signs with under `keyId`, if that key was valid at `atTs`
   * (default now). Fetches the server's keys when the key is unknown or its validity has lapsed.
   */
  verifyKeyFor(serverName: string, keyId: string, atTs = this.deps.clock.now()): Promise<string | undefined> {
    return this.keyFor(serverName, keyId, atTs, false);
  }

  private async keyFor(serverName: string, keyId: string, atTs: number, directOnly: boolean): Promise<string | undefined> {
    if (serverName === this.deps.serverName) return this.ownKey(keyId, atTs);
    if (!KEY_ID_RE.test(keyId) || !isValidServerName(serverName)) return undefined;
    const known = await this.lookup(serverName, keyId);
    if (known && usableAt(known, atTs)) return known.key;
    // An old key that expired before atTs stays invalid; anything else may have been refreshed since.
    if (known && known.expiredTs !== null) return undefined;
    await this.refresh(serverName, { directOnly });
    const again = await this.lookup(serverName, keyId);
    return again && usableAt(again, atTs) ? again.key : undefined;
  }

  /**
   * For the notary endpoints: the key responses of `serverName` (origin-signed, not yet signed by us),
   * refreshed when the stored one expires before `minimumValidUntilTs` or lacks a wanted key; the last
   * response is still returned when the origin cannot be reached or does not answer within
   * NOTARY_WAIT_MS (so an unreachable origin cannot hold the notary's answer). [] when nothing is known.
   */
  async notaryKeys(serverName: string, minimumValidUntilTs: number, keyIds: readonly string[] = []): Promise<ServerKeys[]> {
    if (serverName === this.deps.serverName) return [this.ownServerKeys()];
    if (!isValidServerName(serverName)) return [];
    const stored = async () => getServerKeyResponses(this.deps.db.knex, serverName, keyIds);
    let rows = await stored();
    const missing = keyIds.some((id) => !rows.some((r) => r.key_id === id));
    if (!rows.length || missing || rows.some((r) => r.valid_until_ts < minimumValidUntilTs)) {
      // A notary asks the origin itself, never other notaries; the asking server wants a newer answer, so the
      // minimum refetch interval does not apply (concurrent asks share one fetch).
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), NOTARY_WAIT_MS)));
      try {
        await Promise.race([this.refresh(serverName, { directOnly: true, force: true }), waited]);
      } finally {
        clearTimeout(timer);
      }
      rows = await stored();
    }
    // One entry per distinct response: a response listing several keys is stored once per key ID.
    return [...new Set(rows.map((r) => r.key_json))].map((json) => JSON.parse(json) as ServerKeys);
  }

  /** Fetches `serverName`'s keys now (deduplicated, at most once per minRefetchInterval) and stores them. */
  refresh(serverName: string, options: { directOnly?: boolean; force?: boolean } = {}): Promise<ServerKeys | undefined> {
    const key = `${options.directOnly ? 'd' : 'a'} ${serverName}`;
    const running = this.inFlight.get(key);
    if (running) return running;
    const now = this.deps.clock.now();
    const last = this.lastFetch.get(serverName);
    if (!options.force && last !== undefined && now - last < this.minRefetchMs) return Promise.resolve(undefined);
    this.lastFetch.set(serverName, now);
    const p = this.fetchAndStore(serverName, options.directOnly ?? false).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private async fetchAndStore(serverName: string, directOnly: boolean): Promise<ServerKeys | undefined> {
    if (!directOnly) {
      for (const notary of this.deps.trustedKeyServers) {
        if (notary.server_name === serverName || notary.server_name === this.deps.serverName) continue;
        try {
          const keys = await this.fetchViaNotary(serverName, notary);
          if (keys) return keys;
        } catch (err) {
          this.deps.logger.warn({ serverName, notary: notary.server_name, err: (err as Error).message }, 'key query through notary failed');
        }
      }
    }
    try {
      const json = await this.deps.client.request({ destination: serverName, method: 'GET', path: '/_matrix/key/v2/server', signed: false, maxResponseBytes: 256 * 1024 });
      const fetchedTs = this.deps.clock.now();
      const { keys, rows } = checkServerKeys(json, serverName, fetchedTs);
      await this.store(serverName, serverName, keys, rows, fetchedTs);
      return keys;
    } catch (err) {
      this.deps.logger.warn({ serverName, err: describe(err) }, 'fetching server keys failed');
      return undefined;
    }
  }

  private async fetchViaNotary(serverName: string, notary: TrustedKeyServer): Promise<ServerKeys | undefined> {
    const res = await this.deps.client.request<{ server_keys?: unknown }>({
      destination: notary.server_name,
      method: 'POST',
      path: '/_matrix/key/v2/query',
      body: { server_keys: { [serverName]: {} } },
      signed: false,
      maxResponseBytes: 1024 * 1024,
    });
    if (!Array.isArray(res.server_keys)) throw new KeyResponseError('notary response without server_keys');
    const fetchedTs = this.deps.clock.now();
    let best: { keys: ServerKeys; rows: ServerKeyRow[] } | undefined;
    for (const entry of res.server_keys) {
      if (!isObject(entry) || entry.server_name !== serverName) continue;
      if (!(await this.notarySigned(entry, notary))) throw new KeyResponseError('response not signed by the notary');
      const checked = checkServerKeys(entry, serverName, fetchedTs);
      if (!best || checked.keys.valid_until_ts > best.keys.valid_until_ts) best = checked;
    }
    if (!best) return undefined;
    await this.store(serverName, notary.server_name, best.keys, best.rows, fetchedTs);
    return best.keys;
  }

  private async notarySigned(entry: Record<string, unknown>, notary: TrustedKeyServer): Promise<boolean> {
    const sigs = isObject(entry.signatures) ? entry.signatures[notary.server_name] : undefined;
    if (!isObject(sigs)) return false;
    for (const keyId of Object.keys(sigs)) {
      const publicKey = notary.verify_keys ? own(notary.verify_keys, keyId) : await this.keyFor(notary.server_name, keyId, this.deps.clock.now(), true);
      if (publicKey !== undefined && verifyJsonSignature(entry, notary.server_name, keyId, publicKey)) return true;
    }
    return false;
  }

  private async store(serverName: string, fromServer: string, keys: ServerKeys, rows: ServerKeyRow[], fetchedTs: number): Promise<void> {
    const db = this.deps.db.knex;
    await upsertServerKeys(db, rows);
    // Each key ID keeps its own last response (never replaced by one that expires earlier, e.g. a notary's older
    // copy): an origin that stops listing a key cannot make this notary forget it.
    const json = JSON.stringify(keys);
    await putServerKeyResponses(
      db,
      Object.keys(keys.verify_keys)
        .filter((id) => KEY_ID_RE.test(id))
        .map((keyId) => ({ server_name: serverName, key_id: keyId, from_server: fromServer, key_json: json, valid_until_ts: keys.valid_until_ts, fetched_ts: fetchedTs })),
    );
    for (const r of rows) this.cache.set(`${serverName} ${r.key_id}`, { key: r.verify_key, validUntilTs: r.valid_until_ts, expiredTs: r.expired_ts });
  }

  private async lookup(serverName: string, keyId: string): Promise<CachedKey | undefined> {
    const cacheKey = `${serverName} ${keyId}`;
    const hit = this.cache.get(cacheKey);
    if (hit) return hit;
    const row = await getServerKey(this.deps.db.knex, serverName, keyId);
    if (!row) return undefined;
    const value = { key: row.verify_key, validUntilTs: row.valid_until_ts, expiredTs: row.expired_ts };
    this.cache.set(cacheKey, value);
    return value;
  }

  private ownKey(keyId: string, atTs: number): string | undefined {
    if (keyId === this.deps.signingKey.keyId) return this.deps.signingKey.publicKey;
    const old = own(this.deps.oldSigningKeys, keyId);
    return old && atTs <= old.expired_ts ? old.key : undefined;
  }
}

function usableAt(k: CachedKey, atTs: number): boolean {
  return atTs <= (k.expiredTs ?? k.validUntilTs);
}

function describe(err: unknown): string {
  if (err && typeof err === 'object' && 'detail' in err) return String((err as { detail: unknown }).detail);
  return err instanceof Error ? err.message : String(err);
}
