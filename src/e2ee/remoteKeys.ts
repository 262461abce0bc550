/**
 * /keys/query and /keys/claim for users of other servers (spec: Client-Server API, "Key management API";
 * Server-Server API, "End-to-End Encryption"). A query for a user who shares a room with a local user is
 * answered from the remote device-list cache (resynced when missing or stale); anyone else is asked of
 * their server with POST /user/keys/query. Claims always go to the user's server. A server that cannot be
 * reached lands in `failures`; its error text never reaches the client.
 */
import type { Logger } from 'pino';
import type { FederationRequest } from '../federation/client.js';
import { serverNameOf } from '../federation/serverName.js';
import type { Database } from '../storage/database.js';
import * as e2eeRepo from '../storage/repositories/e2ee.js';
import { publicKeyOf } from './deviceKeysService.js';
import { checkedCrossSigningKey, checkedDeviceKeys, type RemoteDeviceLists } from './remoteDeviceLists.js';
import { mergeStoredSignatures } from './signatures.js';
import { dict, own } from '../util/dict.js';

type KeyObject = Record<string, unknown>;

export interface RemoteKeysDeps {
  db: Database;
  serverName: string;
  client: { request<T = unknown>(req: FederationRequest): Promise<T> };
  deviceLists: RemoteDeviceLists;
  logger: Logger;
}

export interface KeysQueryResult {
  device_keys: Record<string, Record<string, KeyObject>>;
  master_keys: Record<string, KeyObject>;
  self_signing_keys: Record<string, KeyObject>;
  failures: Record<string, unknown>;
}

export interface KeysClaimResult {
  one_time_keys: Record<string, Record<string, Record<string, unknown>>>;
  failures: Record<string, unknown>;
}

/** Default time a client waits for other servers (the spec's `timeout` default). */
export const DEFAULT_REMOTE_TIMEOUT_MS = 10_000;

const isObject = (v: unknown): v is KeyObject => typeof v === 'object' && v !== null && !Array.isArray(v);
const unreachable = () => ({ errcode: 'M_UNKNOWN', error: 'Failed to reach the server' });

function byServer<T>(entries: Record<string, T>): Map<string, Record<string, T>> {
  const out = new Map<string, Record<string, T>>();
  for (const [userId, v] of Object.entries(entries)) {
    const server = serverNameOf(userId);
    if (!server) continue;
    const forServer = out.get(server) ?? dict<T>();
    forServer[userId] = v;
    out.set(server, forServer);
  }
  return out;
}

export class RemoteKeyService {
  constructor(private readonly deps: RemoteKeysDeps) {}

  async query(viewerUserId: string, request: Record<string, readonly string[]>, timeoutMs = DEFAULT_REMOTE_TIMEOUT_MS): Promise<KeysQueryResult> {
    const out: KeysQueryResult = { device_keys: dict(), master_keys: dict(), self_signing_keys: dict(), failures: dict() };
    const signatures = await e2eeRepo.signaturesFor(this.deps.db.knex, Object.keys(request));
    const withViewerSignatures = (key: KeyObject, userId: string) =>
      mergeStoredSignatures(key, userId, publicKeyOf(key), signatures, viewerUserId);

    await Promise.all(
      [...byServer(request)].map(async ([server, users]) => {
        // Tracked users come from the cache; the rest (and anyone whose cache cannot be had) are asked.
        const ask = dict<readonly string[]>();
        for (const [userId, wanted] of Object.entries(users)) {
          const cached = await this.deps.deviceLists.fresh(userId, timeoutMs).catch((err: unknown) => {
            this.deps.logger.warn({ err, userId }, 'remote device list cache failed');
            return undefined;
          });
          if (!cached) {
            ask[userId] = wanted;
            continue;
          }
          const filter = wanted.length ? new Set(wanted) : undefined;
          const devices = dict<KeyObject>();
          for (const d of cached.devices) {
            if (!d.keys || (filter && !filter.has(d.deviceId))) continue;
            devices[d.deviceId] = { ...d.keys, unsigned: d.displayName !== undefined ? { device_display_name: d.displayName } : {} };
          }
          out.device_keys[userId] = devices;
          if (cached.masterKey) out.master_keys[userId] = withViewerSignatures(cached.masterKey, userId);
          if (cached.selfSigningKey) out.self_signing_keys[userId] = cached.selfSigningKey;
        }
        if (!Object.keys(ask).length) return;
        let res: unknown;
        try {
          res = await this.deps.client.request({
            destination: server,
            method: 'POST',
            path: '/_matrix/federation/v1/user/keys/query',
            body: { device_keys: ask },
            timeoutMs,
          });
        } catch (err) {
          this.deps.logger.info({ server, err: (err as { detail?: string }).detail ?? String(err) }, 'remote key query failed');
          out.failures[server] = unreachable();
          return;
        }
        const body = isObject(res) ? res : {};
        const deviceKeys = isObject(body.device_keys) ? body.device_keys : {};
        const masters = isObject(body.master_keys) ? body.master_keys : {};
        const selfs = isObject(body.self_signing_keys) ? body.self_signing_keys : {};
        // Only what was asked, of users of that server, under the ids they claim to be.
        for (const userId of Object.keys(ask)) {
          const devices = dict<KeyObject>();
          const theirs = own(deviceKeys, userId);
          if (isObject(theirs)) {
            for (const [deviceId, keys] of Object.entries(theirs)) {
              const checked = checkedDeviceKeys(keys, userId, deviceId);
              if (checked) devices[deviceId] = checked;
            }
          }
          out.device_keys[userId] = devices;
          const master = checkedCrossSigningKey(own(masters, userId), userId, 'master');
          if (master) out.master_keys[userId] = withViewerSignatures(master, userId);
          const self = checkedCrossSigningKey(own(selfs, userId), userId, 'self_signing');
          if (self) out.self_signing_keys[userId] = self;
        }
      }),
    );
    return out;
  }

  async claim(request: Record<string, Record<string, string>>, timeoutMs = DEFAULT_REMOTE_TIMEOUT_MS): Promise<KeysClaimResult> {
    const out: KeysClaimResult = { one_time_keys: dict(), failures: dict() };
    await Promise.all(
      [...byServer(request)].map(async ([server, users]) => {
        let res: unknown;
        try {
          res = await this.deps.client.request({
            destination: server,
            method: 'POST',
            path: '/_matrix/federation/v1/user/keys/claim',
            body: { one_time_keys: users },
            timeoutMs,
          });
        } catch (err) {
          this.deps.logger.info({ server, err: (err as { detail?: string }).detail ?? String(err) }, 'remote key claim failed');
          out.failures[server] = unreachable();
          return;
        }
        const keys = isObject(res) && isObject(res.one_time_keys) ? res.one_time_keys : {};
        for (const [userId, devices] of Object.entries(users)) {
          const theirs = own(keys, userId);
          if (!isObject(theirs)) continue;
          for (const deviceId of Object.keys(devices)) {
            const claimed = own(theirs, deviceId);
            if (!isObject(claimed)) continue;
            out.one_time_keys[userId] ??= dict();
            out.one_time_keys[userId][deviceId] = claimed;
          }
        }
      }),
    );
    return out;
  }
}
