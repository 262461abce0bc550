import type { Knex } from 'knex';
import { canonicalJson } from '../crypto/canonicalJson.js';
import { MatrixError } from '../errors.js';
import type { Requester } from '../http/route.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { listDevices } from '../storage/repositories/devices.js';
import * as repo from '../storage/repositories/e2ee.js';
import type { DeviceListService } from './deviceLists.js';
import type { RemoteKeyService } from './remoteKeys.js';
import { mergeStoredSignatures } from './signatures.js';
import { dict } from '../util/dict.js';

export interface KeysUploadBody {
  device_keys?: Record<string, unknown> | undefined;
  one_time_keys?: Record<string, unknown> | undefined;
  fallback_keys?: Record<string, unknown> | undefined;
}

type KeyObject = Record<string, unknown>;

function identityKeys(keys: KeyObject): string {
  return canonicalJson((keys.keys as Record<string, unknown> | undefined) ?? {});
}

/** Spec: Client-Server API, "Key management API" — /keys/upload, /keys/query, /keys/claim. */
export class DeviceKeysService {
  /** Keys of users on other servers (set by federation when it is wired); without it they are `failures`. */
  remoteKeys: Pick<RemoteKeyService, 'query' | 'claim'> | undefined;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly deviceLists: DeviceListService,
  ) {}

  async upload(requester: Requester, body: KeysUploadBody): Promise<{ one_time_key_counts: Record<string, number> }> {
    const { userId } = requester;
    const deviceId = requester.deviceId;
    if (!deviceId) throw new MatrixError('M_INVALID_PARAM', 'This access token has no device');
    const keysChanged = await this.deps.db.write((trx) => this.writeKeys(trx, userId, deviceId, body));
    if (keysChanged) await this.deviceLists.notifyChange(userId);
    return { one_time_key_counts: await this.oneTimeKeyCounts(userId, deviceId) };
  }

  /** Stores a device's keys inside the caller's transaction; true when its device keys changed. */
  async writeKeys(trx: Knex.Transaction, userId: string, deviceId: string, body: KeysUploadBody): Promise<boolean> {
    let keysChanged = false;
    if (body.device_keys) {
      const dk = body.device_keys;
      if (dk.user_id !== userId || dk.device_id !== deviceId) {
        throw new MatrixError('M_INVALID_PARAM', 'device_keys.user_id and device_id must match the requesting device');
      }
      if (typeof dk.keys !== 'object' || dk.keys === null || !Array.isArray(dk.algorithms)) {
        throw new MatrixError('M_BAD_JSON', 'device_keys needs keys and algorithms');
      }
      const existing = (await repo.getDeviceKeys(trx, userId, [deviceId])).get(deviceId);
      // Changed keys replace the old ones (as Synapse); the warning is the only trace, since other users learn of them through device_lists.
      if (existing && identityKeys(existing) !== identityKeys(dk)) {
        this.deps.logger.warn({ userId, deviceId }, 'device re-uploaded different identity keys; replacing them');
      }
      const stored = { ...dk };
      delete stored.unsigned;
      if (!existing || canonicalJson(existing) !== canonicalJson(stored)) {
        await repo.setDeviceKeys(trx, userId, deviceId, stored);
        await this.deviceLists.recordChange(trx, userId);
        keysChanged = true;
      }
    }
    if (body.one_time_keys) {
      const fresh: Array<{ algorithm: string; keyId: string; json: string }> = [];
      for (const [fullId, key] of Object.entries(body.one_time_keys)) {
        const [algorithm, keyId] = splitKeyId(fullId);
        const json = JSON.stringify(key);
        const existing = await repo.getOneTimeKey(trx, userId, deviceId, algorithm, keyId);
        if (existing !== undefined) {
          if (canonicalJson(JSON.parse(existing)) !== canonicalJson(key)) {
            throw new MatrixError('M_INVALID_PARAM', `One-time key ${fullId} already exists with different content`);
          }
          continue;
        }
        fresh.push({ algorithm, keyId, json });
      }
      await repo.insertOneTimeKeys(trx, userId, deviceId, fresh);
    }
    if (body.fallback_keys) {
      for (const [fullId, key] of Object.entries(body.fallback_keys)) {
        const [algorithm, keyId] = splitKeyId(fullId);
        const current = await repo.getFallbackKey(trx, userId, deviceId, algorithm);
        // Re-uploading the same fallback key must not mark a used one as unused again.
        if (current && current.keyId === keyId && canonicalJson(JSON.parse(current.json)) === canonicalJson(key)) continue;
        await repo.setFallbackKey(trx, userId, deviceId, algorithm, keyId, JSON.stringify(key));
      }
    }
    return keysChanged;
  }

  async oneTimeKeyCounts(userId: string, deviceId: string): Promise<Record<string, number>> {
    // signed_curve25519 is always reported so clients know to top it up.
    return { signed_curve25519: 0, ...(await repo.countOneTimeKeys(this.deps.db.knex, userId, deviceId)) };
  }

  unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    return repo.unusedFallbackKeyTypes(this.deps.db.knex, userId, deviceId);
  }

  /** POST /keys/query: local users from the database, users of other servers through `remoteKeys`. */
  async query(requester: Requester, request: Record<string, unknown>): Promise<Record<string, unknown>> {
    const local = dict<unknown>();
    const remote = dict<string[]>();
    for (const [userId, wanted] of Object.entries(request)) {
      if (this.isLocal(userId)) local[userId] = wanted;
      else remote[userId] = Array.isArray(wanted) ? (wanted as string[]) : [];
    }
    const result = await this.queryLocal(requester.userId, local);
    if (Object.keys(remote).length) {
      if (this.remoteKeys) {
        const theirs = await this.remoteKeys.query(requester.userId, remote);
        Object.assign(result.device_keys, theirs.device_keys);
        Object.assign(result.master_keys, theirs.master_keys);
        Object.assign(result.self_signing_keys, theirs.self_signing_keys);
        Object.assign(result.failures, theirs.failures);
      } else {
        for (const userId of Object.keys(remote)) result.failures[serverOf(userId)] = { errcode: 'M_UNRECOGNIZED', error: 'Federation is not available' };
      }
    }
    return result;
  }

  /**
   * Keys of local users as `viewer` sees them (signatures of their own user-signing key, their own
   * user-signing key). Also answers POST /_matrix/federation/v1/user/keys/query (viewer undefined).
   */
  async queryLocal(
    viewer: string | undefined,
    request: Record<string, unknown>,
  ): Promise<{
    device_keys: Record<string, Record<string, KeyObject>>;
    master_keys: Record<string, KeyObject>;
    self_signing_keys: Record<string, KeyObject>;
    user_signing_keys: Record<string, KeyObject>;
    failures: Record<string, unknown>;
  }> {
    const db = this.deps.db.knex;
    const deviceKeys = dict<Record<string, KeyObject>>();
    const masterKeys = dict<KeyObject>();
    const selfSigningKeys = dict<KeyObject>();
    const userSigningKeys = dict<KeyObject>();
    const failures = dict<unknown>();
    const userIds = Object.keys(request).filter((u) => this.isLocal(u));
    const signatures = await repo.signaturesFor(db, userIds);
    const viewerId = viewer ?? '';
    for (const userId of userIds) {
      const wanted = request[userId];
      const deviceFilter = Array.isArray(wanted) && wanted.length ? (wanted as string[]) : undefined;
      const keys = await repo.getDeviceKeys(db, userId, deviceFilter);
      const devices = new Map((await listDevices(db, userId, true)).map((d) => [d.deviceId, d]));
      const out = dict<KeyObject>();
      for (const [deviceId, key] of keys) {
        const device = devices.get(deviceId);
        if (!device) continue;
        const withSigs = mergeStoredSignatures(key, userId, deviceId, signatures, viewerId);
        withSigs.unsigned = device.displayName ? { device_display_name: device.displayName } : {};
        out[deviceId] = withSigs;
      }
      deviceKeys[userId] = out;
      const cross = await repo.getCrossSigningKeys(db, userId);
      if (cross.master) masterKeys[userId] = mergeStoredSignatures(cross.master, userId, publicKeyOf(cross.master), signatures, viewerId);
      if (cross.self_signing) selfSigningKeys[userId] = cross.self_signing;
      if (cross.user_signing && viewer !== undefined && userId === viewer) userSigningKeys[userId] = cross.user_signing;
    }
    return {
      device_keys: deviceKeys,
      master_keys: masterKeys,
      self_signing_keys: selfSigningKeys,
      user_signing_keys: userSigningKeys,
      failures,
    };
  }

  /** POST /keys/claim: local keys here, keys of other servers' users through `remoteKeys`. */
  async claim(request: Record<string, Record<string, string>>): Promise<Record<string, unknown>> {
    const local = dict<Record<string, string>>();
    const remote = dict<Record<string, string>>();
    for (const [userId, devices] of Object.entries(request)) (this.isLocal(userId) ? local : remote)[userId] = devices;
    const oneTimeKeys = await this.claimLocal(local);
    const failures = dict<unknown>();
    if (Object.keys(remote).length) {
      if (this.remoteKeys) {
        const theirs = await this.remoteKeys.claim(remote);
        Object.assign(oneTimeKeys, theirs.one_time_keys);
        Object.assign(failures, theirs.failures);
      } else {
        for (const userId of Object.keys(remote)) failures[serverOf(userId)] = { errcode: 'M_UNRECOGNIZED', error: 'Federation is not available' };
      }
    }
    return { one_time_keys: oneTimeKeys, failures };
  }

  /**
   * Claims keys of local users: each one-time key is handed out once, oldest first; the fallback key when
   * none are left. Also answers POST /_matrix/federation/v1/user/keys/claim.
   */
  async claimLocal(request: Record<string, Record<string, string>>): Promise<Record<string, Record<string, Record<string, unknown>>>> {
    const oneTimeKeys = dict<Record<string, Record<string, unknown>>>();
    await this.deps.db.write(async (trx) => {
      for (const [userId, devices] of Object.entries(request)) {
        if (!this.isLocal(userId)) continue;
        for (const [deviceId, algorithm] of Object.entries(devices)) {
          const taken = await repo.takeOneTimeKey(trx, userId, deviceId, algorithm);
          let result: { keyId: string; json: string } | undefined = taken;
          if (!result) {
            const fallback = await repo.getFallbackKey(trx, userId, deviceId, algorithm);
            if (fallback) {
              if (!fallback.used) await repo.markFallbackKeyUsed(trx, userId, deviceId, algorithm);
              result = fallback;
            }
          }
          if (!result) continue;
          oneTimeKeys[userId] ??= dict();
          oneTimeKeys[userId][deviceId] = { [`${algorithm}:${result.keyId}`]: JSON.parse(result.json) };
        }
      }
    });
    return oneTimeKeys;
  }

  private isLocal(userId: string): boolean {
    return serverOf(userId) === this.deps.serverName;
  }
}

function serverOf(userId: string): string {
  return userId.slice(userId.indexOf(':') + 1);
}

function splitKeyId(fullId: string): [string, string] {
  const i = fullId.indexOf(':');
  if (i <= 0 || i === fullId.length - 1) throw new MatrixError('M_INVALID_PARAM', `Invalid key id ${fullId}`);
  return [fullId.slice(0, i), fullId.slice(i + 1)];
}

/** The unpadded base64 public key of a cross-signing key object. */
export function publicKeyOf(key: KeyObject): string {
  const keys = (key.keys as Record<string, string> | undefined) ?? {};
  const first = Object.values(keys)[0];
  return first ?? '';
}
