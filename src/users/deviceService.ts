import { notFound } from '../errors.js';
import type { Requester } from '../http/route.js';
import type { ServiceDeps } from '../serviceDeps.js';
import * as devicesRepo from '../storage/repositories/devices.js';
import type { DeviceRecord } from '../storage/repositories/devices.js';
import type { AccessTokens, IssuedTokens } from './accessTokens.js';
import type { UserHooks } from './hooks.js';
import { generateDeviceId } from './usernames.js';
import { clientIpMaxAgeMs } from './clientIpRetention.js';
import { inTransaction, type Work } from './unitOfWork.js';

export interface OpenSessionOptions {
  userId: string;
  /** Reusing an existing device replaces its tokens and keeps its keys (spec: "Relationship between access tokens and devices"). */
  deviceId?: string;
  displayName?: string;
  ip?: string;
  userAgent?: string;
  withRefresh: boolean;
}

export interface OpenedSession extends IssuedTokens {
  deviceId: string;
}

/** Devices and the sessions (tokens) that live on them. */
export class DeviceService {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly tokens: AccessTokens,
    private readonly hooks: UserHooks,
  ) {}

  list(userId: string): Promise<DeviceRecord[]> {
    return devicesRepo.listDevices(this.deps.db.knex, userId);
  }

  async get(userId: string, deviceId: string): Promise<DeviceRecord | undefined> {
    const device = await devicesRepo.getDevice(this.deps.db.knex, userId, deviceId);
    return device && !device.hidden ? device : undefined;
  }

  /**
   * MSC4190: an application service creates a device for one of its users without logging in. Returns
   * false when the device already existed.
   */
  async createForAppservice(userId: string, deviceId: string, displayName: string | null): Promise<boolean> {
    const created = await devicesRepo.insertDevice(this.deps.db.knex, { userId, deviceId, displayName, createdTs: this.deps.clock.now() });
    if (created) await this.hooks.run('onDeviceChanged', this.hooks.onDeviceChanged, userId, deviceId, 'created');
    return created;
  }

  async rename(userId: string, deviceId: string, displayName: string | null): Promise<void> {
    const changed = await devicesRepo.updateDisplayName(this.deps.db.knex, userId, deviceId, displayName);
    if (!changed) throw notFound('Unknown device');
    await this.hooks.run('onDeviceChanged', this.hooks.onDeviceChanged, userId, deviceId, 'renamed');
  }

  /** Creates the device if needed and issues tokens for it, inside the caller's unit of work. */
  async openSessionIn(work: Work, opts: OpenSessionOptions): Promise<OpenedSession> {
    const deviceId = opts.deviceId ?? generateDeviceId();
    // user_ips_max_age: 0 keeps no address, user agent or last-seen time at all.
    const seen = clientIpMaxAgeMs(this.deps.config) === 0 ? {} : { ip: opts.ip, userAgent: opts.userAgent };
    const created = await devicesRepo.insertDevice(work.db, {
      userId: opts.userId,
      deviceId,
      displayName: opts.displayName ?? null,
      createdTs: this.deps.clock.now(),
      ...seen,
    });
    if (!created) {
      await this.tokens.revokeDevices(work.db, opts.userId, [deviceId]);
      work.afterCommit(() => this.tokens.evictDevices(opts.userId, [deviceId]));
    } else {
      work.afterCommit(() => this.hooks.run('onDeviceChanged', this.hooks.onDeviceChanged, opts.userId, deviceId, 'created'));
    }
    const issued = await this.tokens.issue(work.db, { userId: opts.userId, deviceId, withRefresh: opts.withRefresh });
    return { ...issued, deviceId };
  }

  /** After a change to the account its token lookups carry (a guest upgraded): look them up afresh. */
  forgetCachedTokens(userId: string): void {
    this.tokens.evictUser(userId);
  }

  openSession(opts: OpenSessionOptions): Promise<OpenedSession> {
    return inTransaction(this.deps.db.knex, this.deps.logger, (work) => this.openSessionIn(work, opts));
  }

  /** Deletes devices and their tokens inside the caller's unit of work; hooks run after commit. */
  async deleteIn(work: Work, userId: string, deviceIds: readonly string[]): Promise<string[]> {
    const deleted = await devicesRepo.deleteDevices(work.db, userId, deviceIds);
    await this.tokens.revokeDevices(work.db, userId, deviceIds);
    work.afterCommit(async () => {
      this.tokens.evictDevices(userId, deviceIds);
      if (deleted.length > 0) await this.hooks.run('onDevicesDeleted', this.hooks.onDevicesDeleted, userId, deleted);
    });
    return deleted;
  }

  /** Deletes every device of a user (but `keepDeviceId`) and every token (but `keepTokenId`). */
  async deleteAllIn(work: Work, userId: string, keep: { deviceId?: string; tokenId?: number } = {}): Promise<string[]> {
    const deleted = await devicesRepo.deleteAllDevices(work.db, userId, keep.deviceId);
    await this.tokens.revokeUser(work.db, userId, keep);
    work.afterCommit(async () => {
      this.tokens.evictUser(userId, keep.tokenId);
      if (deleted.length > 0) await this.hooks.run('onDevicesDeleted', this.hooks.onDevicesDeleted, userId, deleted);
    });
    return deleted;
  }

  delete(userId: string, deviceIds: readonly string[]): Promise<string[]> {
    return inTransaction(this.deps.db.knex, this.deps.logger, (work) => this.deleteIn(work, userId, deviceIds));
  }

  /** Spec: "POST /_matrix/client/v3/logout": the device and all its tokens go. */
  async logout(requester: Requester): Promise<void> {
    if (requester.deviceId !== undefined) {
      await this.delete(requester.userId, [requester.deviceId]);
      return;
    }
    const tokenId = requester.tokenId;
    if (tokenId === undefined) return; // application service tokens are not ours to revoke
    await inTransaction(this.deps.db.knex, this.deps.logger, async (work) => {
      await this.tokens.revokeToken(work.db, tokenId);
      work.afterCommit(() => this.tokens.evictToken(tokenId));
    });
  }

  /** Spec: "POST /_matrix/client/v3/logout/all". */
  async logoutAll(userId: string): Promise<void> {
    await inTransaction(this.deps.db.knex, this.deps.logger, (work) => this.deleteAllIn(work, userId));
  }
}
