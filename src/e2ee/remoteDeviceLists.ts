/**
 * The device lists of remote users (spec: Server-Server API, "Device Management"): for every remote user
 * who shares a room with a local user, the devices, keys and cross-signing keys at the stream_id their
 * server last told us about. `m.device_list_update` EDUs are applied when their prev_id follows what we
 * hold, otherwise the list is resynced through GET /user/devices/{userId}. Each change is recorded on the
 * device-list stream, so local users sharing a room see the remote user in `device_lists.changed`.
 */
import type { Logger } from 'pino';
import type { FederationRequest } from '../federation/client.js';
import { serverNameOf } from '../federation/serverName.js';
import type { Database } from '../storage/database.js';
import * as repo from '../storage/repositories/remoteDevices.js';
import { usersSharingRooms } from '../storage/repositories/state.js';
import type { DeviceListService } from './deviceLists.js';

type KeyObject = Record<string, unknown>;

export interface RemoteDeviceListDeps {
  db: Database;
  serverName: string;
  client: { request<T = unknown>(req: FederationRequest): Promise<T> };
  deviceLists: Pick<DeviceListService, 'recordChange' | 'notifyChange'>;
  clock: { now(): number };
  logger: Logger;
}

export interface CachedDeviceList {
  streamId: number;
  devices: repo.RemoteDevice[];
  masterKey: KeyObject | undefined;
  selfSigningKey: KeyObject | undefined;
}

export interface DeviceListUpdate {
  user_id: string;
  device_id: string;
  device_display_name?: string | undefined;
  stream_id: number;
  prev_id?: number[] | undefined;
  deleted?: boolean | undefined;
  keys?: KeyObject | undefined;
}

export interface SigningKeyUpdate {
  user_id: string;
  master_key?: KeyObject | undefined;
  self_signing_key?: KeyObject | undefined;
}

const isObject = (v: unknown): v is KeyObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Device keys as a remote server sent them: an object, refused if it names another user or device than the
 * one it is filed under. Synapse keeps other shapes as sent (SyTest sends `{device_keys: {}}`); clients check
 * user, device and signatures themselves, so a relabelled key is what we must not pass on.
 */
export function checkedDeviceKeys(keys: unknown, userId: string, deviceId: string): KeyObject | undefined {
  if (!isObject(keys)) return undefined;
  if (keys.user_id !== undefined && keys.user_id !== userId) return undefined;
  if (keys.device_id !== undefined && keys.device_id !== deviceId) return undefined;
  if (keys.keys !== undefined && !isObject(keys.keys)) return undefined;
  return keys;
}

/** A cross-signing key of `userId` with `usage`, or undefined. */
export function checkedCrossSigningKey(key: unknown, userId: string, usage: string): KeyObject | undefined {
  if (!isObject(key) || key.user_id !== userId || !Array.isArray(key.usage) || !key.usage.includes(usage) || !isObject(key.keys)) return undefined;
  return key;
}

const RESYNC_TIMEOUT_MS = 10_000;

export class RemoteDeviceLists {
  /** Per remote user, the work in progress on their list: updates for one user apply one at a time. */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: RemoteDeviceListDeps) {}

  /** Whether a local user shares a room with `userId` (only then do we keep their list). */
  async isTracked(userId: string): Promise<boolean> {
    const sharing = await usersSharingRooms(this.deps.db.knex, userId);
    return sharing.some((u) => serverNameOf(u) === this.deps.serverName);
  }

  /** Resolves when every update received so far has been handled (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.chains.size) await Promise.allSettled([...this.chains.values()]);
  }

  /**
   * The cached list when it is usable: the user is tracked and the cache is not known to be stale. A tracked
   * user without a usable cache is resynced first (bounded by `timeoutMs`); undefined when that fails.
   */
  async fresh(userId: string, timeoutMs = RESYNC_TIMEOUT_MS): Promise<CachedDeviceList | undefined> {
    if (!(await this.isTracked(userId))) return undefined;
    const head = await repo.getRemoteDeviceList(this.deps.db.knex, userId);
    if (!head || head.stale) {
      const ok = await this.serial(userId, async () => {
        // Another request may have resynced while this one waited.
        const again = await repo.getRemoteDeviceList(this.deps.db.knex, userId);
        if (again && !again.stale) return true;
        // Announced even on a first fetch, as Synapse does: clients that queried before we held the list
        // (and got nothing, or another server's answer) learn to query again.
        return this.resync(userId, timeoutMs, true);
      });
      if (!ok) return undefined;
    }
    return this.cached(userId);
  }

  /** What the cache holds for `userId`, fresh or not. */
  async cached(userId: string): Promise<CachedDeviceList | undefined> {
    const db = this.deps.db.knex;
    const head = await repo.getRemoteDeviceList(db, userId);
    if (!head || head.stale) return undefined;
    return { streamId: head.streamId, devices: await repo.getRemoteDevices(db, userId), masterKey: head.masterKey, selfSigningKey: head.selfSigningKey };
  }

  /** Inbound m.device_list_update (the dispatcher has checked that the user belongs to `origin`). */
  onDeviceListUpdate(update: DeviceListUpdate): Promise<void> {
    return this.serial(update.user_id, () => this.applyUpdate(update));
  }

  /** Inbound m.signing_key_update. */
  onSigningKeyUpdate(update: SigningKeyUpdate): Promise<void> {
    return this.serial(update.user_id, async () => {
      const userId = update.user_id;
      if (!(await this.isTracked(userId))) return;
      const master = update.master_key === undefined ? undefined : checkedCrossSigningKey(update.master_key, userId, 'master');
      const self = update.self_signing_key === undefined ? undefined : checkedCrossSigningKey(update.self_signing_key, userId, 'self_signing');
      if (!master && !self) return;
      const db = this.deps.db;
      const changed = await db.write(async (trx) => {
        const head = await repo.getRemoteDeviceList(trx, userId);
        // Without a list there is nothing to update: the next query resyncs everything anyway.
        if (!head) return false;
        await repo.saveRemoteDeviceList(trx, {
          userId,
          streamId: head.streamId,
          stale: head.stale,
          updatedTs: this.deps.clock.now(),
          ...(master ? { masterKey: master } : {}),
          ...(self ? { selfSigningKey: self } : {}),
        });
        await this.deps.deviceLists.recordChange(trx, userId);
        return true;
      });
      // Even without a cached list, local users must re-query (their clients may hold old keys).
      if (!changed) await db.write((trx) => this.deps.deviceLists.recordChange(trx, userId));
      await this.deps.deviceLists.notifyChange(userId);
    });
  }

  /**
   * A membership change: remote users who no longer share a room with any local user are forgotten, so
   * their list is fetched anew (not served stale) if they come back.
   */
  async forgetUntracked(userIds: Iterable<string>): Promise<void> {
    for (const userId of userIds) {
      if (serverNameOf(userId) === this.deps.serverName) continue;
      await this.serial(userId, async () => {
        if (await this.isTracked(userId)) return;
        if (!(await repo.getRemoteDeviceList(this.deps.db.knex, userId))) return;
        await this.deps.db.write((trx) => repo.deleteRemoteDeviceList(trx, userId));
      });
    }
  }

  private serial<T>(userId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(userId) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(fn);
    const tail = run.catch(() => undefined);
    this.chains.set(userId, tail);
    void tail.then(() => {
      if (this.chains.get(userId) === tail) this.chains.delete(userId);
    });
    return run;
  }

  private async applyUpdate(u: DeviceListUpdate): Promise<void> {
    const { db, logger } = this.deps;
    const userId = u.user_id;
    if (!(await this.isTracked(userId))) {
      // Nobody here listens: drop what we hold, it can no longer be kept current.
      if (await repo.getRemoteDeviceList(db.knex, userId)) await db.write((trx) => repo.deleteRemoteDeviceList(trx, userId));
      return;
    }
    const head = await repo.getRemoteDeviceList(db.knex, userId);
    const prev = u.prev_id ?? [];
    if (head && !head.stale && u.stream_id <= head.streamId) return; // already applied (a retry, or older)
    const follows = head !== undefined && !head.stale && prev.length > 0 && prev.every((p) => p <= head.streamId) && prev.includes(head.streamId);
    if (!follows) {
      logger.debug({ userId, streamId: u.stream_id, prevId: prev, have: head?.streamId }, 'device list update does not follow: resyncing');
      if (!(await this.resync(userId, RESYNC_TIMEOUT_MS, true))) {
        // Unreachable for now: local clients still learn that the list changed; their query tries again.
        await db.write(async (trx) => {
          if (head) await repo.markRemoteDeviceListStale(trx, userId);
          await this.deps.deviceLists.recordChange(trx, userId);
        });
        await this.deps.deviceLists.notifyChange(userId);
      }
      return;
    }
    await db.write(async (trx) => {
      if (u.deleted) await repo.deleteRemoteDevice(trx, userId, u.device_id);
      else {
        await repo.upsertRemoteDevice(trx, userId, {
          deviceId: u.device_id,
          displayName: typeof u.device_display_name === 'string' ? u.device_display_name : undefined,
          keys: checkedDeviceKeys(u.keys, userId, u.device_id),
        });
      }
      await repo.saveRemoteDeviceList(trx, { userId, streamId: u.stream_id, stale: false, updatedTs: this.deps.clock.now() });
      await this.deps.deviceLists.recordChange(trx, userId);
    });
    await this.deps.deviceLists.notifyChange(userId);
  }

  /**
   * Replaces the cached list with the user's server's current one; `announce` records it as a change local
   * users must hear of. Returns false when that failed.
   */
  private async resync(userId: string, timeoutMs: number, announce: boolean): Promise<boolean> {
    const server = serverNameOf(userId);
    if (!server || server === this.deps.serverName) return false;
    let res: unknown;
    try {
      res = await this.deps.client.request({
        destination: server,
        method: 'GET',
        path: `/_matrix/federation/v1/user/devices/${encodeURIComponent(userId)}`,
        timeoutMs,
      });
    } catch (err) {
      this.deps.logger.info({ userId, err: (err as { detail?: string }).detail ?? String(err) }, 'device list resync failed');
      return false;
    }
    if (!isObject(res) || res.user_id !== userId || !Array.isArray(res.devices) || typeof res.stream_id !== 'number') {
      this.deps.logger.info({ userId }, 'device list resync: malformed answer');
      return false;
    }
    const devices: repo.RemoteDevice[] = [];
    const seen = new Set<string>();
    for (const d of res.devices as unknown[]) {
      if (!isObject(d) || typeof d.device_id !== 'string' || seen.has(d.device_id)) continue;
      seen.add(d.device_id);
      devices.push({
        deviceId: d.device_id,
        displayName: typeof d.device_display_name === 'string' ? d.device_display_name : undefined,
        keys: checkedDeviceKeys(d.keys, userId, d.device_id),
      });
    }
    const streamId = res.stream_id;
    await this.deps.db.write(async (trx) => {
      await repo.replaceRemoteDevices(trx, userId, devices);
      await repo.saveRemoteDeviceList(trx, {
        userId,
        streamId,
        stale: false,
        updatedTs: this.deps.clock.now(),
        masterKey: checkedCrossSigningKey(res.master_key, userId, 'master') ?? null,
        selfSigningKey: checkedCrossSigningKey(res.self_signing_key, userId, 'self_signing') ?? null,
      });
      if (announce) await this.deps.deviceLists.recordChange(trx, userId);
    });
    if (announce) await this.deps.deviceLists.notifyChange(userId);
    return true;
  }
}
