/**
 * Local users' device lists as other servers see them (spec: Server-Server API, "Device Management",
 * "End-to-End Encryption"). After a local user's devices or cross-signing keys change, the list is compared
 * with the one last announced: each added, changed or deleted device becomes an m.device_list_update with
 * the next stream_id and prev_id naming the one before; changed master or self-signing keys become an
 * m.signing_key_update. Comparing snapshots (instead of trusting each caller to say what changed) means a
 * change is never announced twice nor missed, whichever path made it. GET /user/devices answers from the
 * same snapshot, so its stream_id is the one later updates follow.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { canonicalJson } from '../../crypto/canonicalJson.js';
import { publicKeyOf } from '../../e2ee/deviceKeysService.js';
import { mergeStoredSignatures } from '../../e2ee/signatures.js';
import type { Database, Db } from '../../storage/database.js';
import { listDevices } from '../../storage/repositories/devices.js';
import * as e2eeRepo from '../../storage/repositories/e2ee.js';
import { getOutboundDeviceList, saveOutboundDeviceList } from '../../storage/repositories/remoteDevices.js';
import type { Edu, EduOutbox } from './outbox.js';
import { dict, own } from '../../util/dict.js';

type KeyObject = Record<string, unknown>;

export interface LocalDeviceListDeps {
  db: Database;
  serverName: string;
  outbox: EduOutbox;
  logger: Logger;
}

interface CurrentList {
  devices: Map<string, { displayName: string | undefined; keys: KeyObject | undefined }>;
  masterKey: KeyObject | undefined;
  selfSigningKey: KeyObject | undefined;
}

interface Snapshot {
  /** device id → hash of what was announced. */
  devices: Record<string, string>;
  /** Hash of the announced master and self-signing keys. */
  crossSigning: string;
}

export interface UserDevicesResponse {
  user_id: string;
  stream_id: number;
  devices: Array<{ device_id: string; keys: KeyObject; device_display_name?: string }>;
  master_key?: KeyObject;
  self_signing_key?: KeyObject;
}

const hash = (v: unknown) => createHash('sha256').update(canonicalJson(v ?? null)).digest('base64');

export class LocalDeviceLists {
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: LocalDeviceListDeps) {}

  /** A local user's devices or keys may have changed: announce what did. Never throws. */
  changed(userId: string): Promise<void> {
    return this.serial(userId, () => this.announce(userId)).then(
      () => undefined,
      (err: unknown) => this.deps.logger.error({ err, userId }, 'federation: announcing a device list change failed'),
    );
  }

  async idle(): Promise<void> {
    while (this.chains.size) await Promise.allSettled([...this.chains.values()]);
  }

  /** GET /_matrix/federation/v1/user/devices/{userId}: brought up to date (and announced) first. */
  async userDevices(userId: string): Promise<UserDevicesResponse> {
    return this.serial(userId, async () => {
      const { list, streamId } = await this.announce(userId);
      const out: UserDevicesResponse = { user_id: userId, stream_id: streamId, devices: [] };
      for (const [deviceId, d] of list.devices) {
        if (!d.keys) continue; // the spec requires keys; a device without them cannot take part in E2EE yet
        out.devices.push({ device_id: deviceId, keys: d.keys, ...(d.displayName !== undefined ? { device_display_name: d.displayName } : {}) });
      }
      if (list.masterKey) out.master_key = list.masterKey;
      if (list.selfSigningKey) out.self_signing_key = list.selfSigningKey;
      return out;
    });
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

  /** Devices and cross-signing keys as other servers may see them (the owner's signatures only). */
  private async current(db: Db, userId: string): Promise<CurrentList> {
    const signatures = await e2eeRepo.signaturesFor(db, [userId]);
    const keys = await e2eeRepo.getDeviceKeys(db, userId);
    const devices = new Map<string, { displayName: string | undefined; keys: KeyObject | undefined }>();
    for (const d of await listDevices(db, userId, true)) {
      const k = keys.get(d.deviceId);
      devices.set(d.deviceId, {
        displayName: d.displayName ?? undefined,
        keys: k ? mergeStoredSignatures(k, userId, d.deviceId, signatures, '') : undefined,
      });
    }
    const cross = await e2eeRepo.getCrossSigningKeys(db, userId);
    return {
      devices,
      masterKey: cross.master ? mergeStoredSignatures(cross.master, userId, publicKeyOf(cross.master), signatures, '') : undefined,
      selfSigningKey: cross.self_signing,
    };
  }

  /** Compares, queues the EDUs for what changed, stores the new snapshot; returns the list and its stream_id. */
  private async announce(userId: string): Promise<{ list: CurrentList; streamId: number }> {
    const { db, outbox } = this.deps;
    const items: Array<{ destination: string; edu: Edu }> = [];
    const result = await db.write(async (trx) => {
      const list = await this.current(trx, userId);
      const stored = await getOutboundDeviceList(trx, userId);
      // Nothing to announce for a user without devices or keys (nor a row for ids other servers make up).
      if (!stored && !list.devices.size && !list.masterKey && !list.selfSigningKey) return { list, streamId: 0 };
      const before: Snapshot = (stored?.snapshot as Snapshot | undefined) ?? { devices: {}, crossSigning: hash(null) };
      const after: Snapshot = { devices: dict(), crossSigning: hash({ m: list.masterKey ?? null, s: list.selfSigningKey ?? null }) };
      for (const [deviceId, d] of list.devices) after.devices[deviceId] = hash({ n: d.displayName ?? null, k: d.keys ?? null });

      let streamId = stored?.streamId ?? 0;
      const edus: Edu[] = [];
      const ids = new Set([...Object.keys(before.devices), ...Object.keys(after.devices)]);
      for (const deviceId of [...ids].sort()) {
        if (own(before.devices, deviceId) === after.devices[deviceId]) continue;
        const prevId = streamId > 0 ? [streamId] : [];
        streamId += 1;
        const d = list.devices.get(deviceId);
        const content: Record<string, unknown> = { user_id: userId, device_id: deviceId, stream_id: streamId, prev_id: prevId };
        if (!d) content.deleted = true;
        else {
          if (d.displayName !== undefined) content.device_display_name = d.displayName;
          if (d.keys) content.keys = d.keys;
        }
        edus.push({ edu_type: 'm.device_list_update', content });
      }
      if (before.crossSigning !== after.crossSigning) {
        const content: Record<string, unknown> = { user_id: userId };
        if (list.masterKey) content.master_key = list.masterKey;
        if (list.selfSigningKey) content.self_signing_key = list.selfSigningKey;
        edus.push({ edu_type: 'm.signing_key_update', content });
      }
      if (!stored || edus.length) await saveOutboundDeviceList(trx, userId, { streamId, snapshot: after as unknown as Record<string, unknown> });
      if (edus.length) {
        for (const destination of await outbox.serversSharingRoomsWith(trx, userId)) for (const edu of edus) items.push({ destination, edu });
        await outbox.enqueue(trx, items);
      }
      return { list, streamId };
    });
    outbox.wake(items);
    return result;
  }
}
