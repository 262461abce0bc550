/**
 * One bridge user's device: its OlmMachine, the crypto store behind it (IndexedDB, snapshotted into the
 * CryptoStateStore), and the loop that sends the machine's outgoing requests. All work on a machine runs
 * through one SerialQueue: the wasm machine must not process outgoing requests concurrently, and snapshots
 * are saved in the order the state changed.
 */
import {
  CollectStrategy,
  DecryptionSettings,
  DeviceId,
  DeviceLists,
  EncryptionSettings,
  HistoryVisibility,
  MegolmDecryptionError,
  OlmMachine,
  RoomId,
  StoreHandle,
  TrustRequirement,
  UserId,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import { MatrixApiError, type HomeserverApi } from '../matrix/homeserverApi.js';
import { deleteDatabases, exportDatabases, restoreDatabases } from './idbSnapshot.js';
import { requestKind, sendOutgoingRequest, sendSigningKeysUpload, type OutgoingRequest } from './outgoingRequests.js';
import { SerialQueue } from '../serialQueue.js';
import type { DeviceCryptoInput } from './transactionCrypto.js';
import type { CryptoLogger, CryptoStateStore, DecryptedEvent, RoomEncryptionSettings } from './types.js';
import { own } from '../../util/dict.js';

export interface UserMachineDeps {
  api: HomeserverApi;
  store: CryptoStateStore;
  logger: CryptoLogger;
}

export interface OpenMachineOptions {
  userId: string;
  deviceId: string;
  storeName: string;
  storeKey: Uint8Array;
  /** The saved store; without it the store starts empty (a new device). */
  snapshot?: Uint8Array;
}

/** The wasm store names its databases `<storeName>::matrix-sdk-crypto` and `<storeName>::matrix-sdk-crypto-meta`. */
export const storeDatabasePrefix = (storeName: string): string => `${storeName}::`;

const HISTORY_VISIBILITY: Record<string, HistoryVisibility> = {
  invited: HistoryVisibility.Invited,
  joined: HistoryVisibility.Joined,
  shared: HistoryVisibility.Shared,
  world_readable: HistoryVisibility.WorldReadable,
};

const MAX_ROUNDS = 5;

/** An outgoing request that could not be sent (the machine keeps it and offers it again later). */
export interface FailedRequest {
  kind: string;
  error: unknown;
}

/** What a log line may say about an error: status and code, or the error's own (short) message. */
function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof MatrixApiError) return { status: err.status, errcode: err.errcode };
  return { error: err instanceof Error ? `${err.name}: ${err.message.slice(0, 200)}` : typeof err };
}

/** How long closing waits for the store's databases to be dropped from memory. */
const DROP_TIMEOUT_MS = 5_000;

export class UserMachine {
  private readonly queue = new SerialQueue();
  private closed = false;

  private constructor(
    readonly userId: string,
    readonly deviceId: string,
    readonly storeName: string,
    private readonly machine: OlmMachine,
    private readonly deps: UserMachineDeps,
  ) {}

  /** Restores (or wipes) the store's databases, then opens the machine on them. Sends nothing. */
  static async open(deps: UserMachineDeps, o: OpenMachineOptions): Promise<UserMachine> {
    const prefix = storeDatabasePrefix(o.storeName);
    if (o.snapshot) await restoreDatabases(o.snapshot);
    else await deleteDatabases(prefix);
    const handle = await StoreHandle.openWithKey(o.storeName, o.storeKey);
    try {
      const machine = await OlmMachine.initFromStore(new UserId(o.userId), new DeviceId(o.deviceId), handle);
      return new UserMachine(o.userId, o.deviceId, o.storeName, machine, deps);
    } finally {
      handle.free();
    }
  }

  private get who() {
    return { userId: this.userId, deviceId: this.deviceId };
  }

  private run<T>(task: () => Promise<T>): Promise<T> {
    return this.queue.run(() => {
      if (this.closed) return Promise.reject(new Error(`the crypto machine of ${this.userId} is closed`));
      return task();
    });
  }

  /**
   * First start of a new device: uploads its identity and one-time keys, then cross-signs it. Throws when
   * the key upload fails, as a device without keys on the server is of no use.
   */
  async uploadInitialKeys(): Promise<void> {
    await this.run(async () => {
      const failed = await this.flushOutgoing();
      const upload = failed.find((f) => f.kind === 'KeysUpload');
      if (upload) throw upload.error;
      await this.persist();
      await this.ensureCrossSigned();
      await this.persist();
    });
  }

  /**
   * Start of a restored device: device lists may have changed while it was not listening, so every tracked
   * user (its own user among them) is queried again; a cross-signing setup that did not finish is retried.
   */
  async resume(): Promise<void> {
    await this.run(async () => {
      await this.machine.markAllTrackedUsersAsDirty();
      const failed = await this.flushOutgoing();
      if (!failed.length) await this.ensureCrossSigned();
      await this.persist();
    });
  }

  /**
   * Gives the user a cross-signing identity that signs this device. Clients show events from a device its
   * owner did not sign with a red shield ("not verified by its owner"), and clients that exclude insecure
   * devices do not decrypt them at all. The first upload needs no user-interactive auth (MSC3967); when the
   * server wants it (the user already has other keys), the device stays unsigned and this is logged.
   */
  private async ensureCrossSigned(): Promise<void> {
    const status = await this.machine.crossSigningStatus();
    const haveKeys = status.hasMaster && status.hasSelfSigning && status.hasUserSigning;
    status.free();
    if (haveKeys) {
      // A Device holds the store open until freed (a leaked one keeps the IndexedDB connection, and so
      // deleting the databases on close, waiting forever).
      const own = await this.machine.getDevice(new UserId(this.userId), new DeviceId(this.deviceId));
      const signed = own?.isCrossSignedByOwner() ?? false;
      own?.free();
      if (signed) return;
    }
    try {
      // Keys we already have are uploaded again (the same keys need no re-authentication), else new ones.
      const reqs = await this.machine.bootstrapCrossSigning(!haveKeys);
      try {
        const keys = reqs.uploadKeysRequest as OutgoingRequest | undefined;
        if (keys) await this.send(keys);
        await sendSigningKeysUpload(this.deps.api, this.who, reqs.uploadSigningKeysRequest);
        await this.send(reqs.uploadSignaturesRequest);
      } finally {
        reqs.free();
      }
      this.deps.logger.info(this.who, 'crypto: device cross-signed');
    } catch (err) {
      this.deps.logger.warn({ ...this.who, ...errorFields(err) }, 'crypto: cannot cross-sign the device; it stays unsigned');
    }
  }

  /** Feeds one transaction's share (to-device messages, device lists, key counts) to the machine. */
  async receive(input: DeviceCryptoInput | undefined, deviceLists: { changed: string[]; left: string[] }): Promise<void> {
    await this.run(async () => {
      const toDevice = JSON.stringify(input?.toDevice ?? []);
      const lists = new DeviceLists(
        deviceLists.changed.map((u) => new UserId(u)),
        deviceLists.left.map((u) => new UserId(u)),
      );
      const counts = new Map(Object.entries(input?.oneTimeKeyCounts ?? {}));
      const fallback = input?.unusedFallbackKeyTypes ? new Set(input.unusedFallbackKeyTypes) : undefined;
      const settings = new DecryptionSettings(TrustRequirement.Untrusted);
      // Without counts for this device the transaction says nothing about them: MSC4186 semantics ("missing
      // means unchanged") keep the machine from taking that as zero keys and uploading more every time.
      const processed = input?.oneTimeKeyCounts
        ? await this.machine.receiveSyncChanges(toDevice, lists, counts, fallback, settings)
        : await this.machine.receiveSyncChangesMsc4186(toDevice, lists, counts, fallback, settings);
      if (processed.length) {
        const kinds: Record<string, number> = {};
        for (const p of processed) {
          // prototype-safe: class names of the crypto library's request types, not input
          kinds[p.constructor.name] = (kinds[p.constructor.name] ?? 0) + 1;
          p.free();
        }
        this.deps.logger.debug({ ...this.who, toDevice: kinds }, 'crypto: to-device events processed');
      }
      const sent = new Set<string>();
      await this.flushOutgoing(sent);
      // Only device keys learnt by /keys/query changed: not worth a snapshot, since a restored device
      // queries all its tracked users again. Everything else (sessions, uploads, key counts) is saved.
      const onlyQueries = [...sent].every((k) => k === 'KeysQuery');
      if (processed.length || input?.oneTimeKeyCounts || input?.unusedFallbackKeyTypes || !onlyQueries) await this.persist();
    });
  }

  /**
   * Encrypts an event for the room: tracks the members, brings their device lists up to date, claims
   * one-time keys for devices without an Olm session, shares the room key with them, encrypts, and saves
   * the store before returning (a Megolm message index must never be used twice, also across restarts).
   * Throws when a request that the recipients need fails; a later call retries.
   */
  async encrypt(roomId: string, eventType: string, content: Record<string, unknown>, memberIds: readonly string[], settings: RoomEncryptionSettings = {}): Promise<Record<string, unknown>> {
    const members = [...new Set([...memberIds, this.userId])];
    // The wasm methods take (and invalidate) the UserId objects they are given: a fresh array each time.
    const users = () => members.map((u) => new UserId(u));
    return this.run(async () => {
      await this.machine.updateTrackedUsers(users());
      const failed = await this.flushOutgoing();
      const query = failed.find((f) => f.kind === 'KeysQuery');
      if (query) throw query.error;
      const claim = await this.machine.getMissingSessions(users());
      if (claim) await this.send(claim);
      const shares = await this.machine.shareRoomKey(new RoomId(roomId), users(), this.encryptionSettings(settings));
      for (const share of shares) await this.send(share);
      const encrypted = await this.machine.encryptRoomEvent(new RoomId(roomId), eventType, JSON.stringify(content));
      await this.persist();
      return JSON.parse(encrypted) as Record<string, unknown>;
    });
  }

  /** Decrypts a timeline event; undefined when this machine has no key for it (or it is not valid). */
  async decrypt(event: Record<string, unknown>, roomId: string): Promise<DecryptedEvent | undefined> {
    return this.run(async () => {
      try {
        const res = await this.machine.decryptRoomEvent(JSON.stringify(event), new RoomId(roomId), new DecryptionSettings(TrustRequirement.Untrusted));
        const clear = JSON.parse(res.event) as { type?: unknown; content?: unknown };
        res.free();
        if (typeof clear.type !== 'string' || typeof clear.content !== 'object' || clear.content === null) return undefined;
        return { type: clear.type, content: clear.content as Record<string, unknown> };
      } catch (err) {
        const code = err instanceof MegolmDecryptionError ? err.code : undefined;
        this.deps.logger.debug({ ...this.who, roomId, eventId: event.event_id, code, ...(code === undefined ? errorFields(err) : {}) }, 'crypto: cannot decrypt event');
        return undefined;
      }
    });
  }

  /**
   * Saves the store and shuts the machine down; its databases are then dropped from memory. Dropping waits
   * for the machine's IndexedDB connection to close, which a wasm object still holding the store (an
   * unfreed Device, say) delays until it is garbage-collected: the wait is bounded.
   */
  async close(): Promise<void> {
    await this.run(async () => {
      try {
        await this.persist();
      } finally {
        this.closed = true;
        this.machine.close();
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), DROP_TIMEOUT_MS);
        timer.unref();
      });
      const dropped = deleteDatabases(storeDatabasePrefix(this.storeName)).then(() => 'dropped' as const);
      const outcome = await Promise.race([dropped, timeout]).finally(() => clearTimeout(timer));
      if (outcome === 'timeout') this.deps.logger.warn(this.who, 'crypto: the closed store is still open; its databases are dropped later');
    });
  }

  private encryptionSettings(s: RoomEncryptionSettings): EncryptionSettings {
    const e = new EncryptionSettings();
    e.sharingStrategy = CollectStrategy.allDevices();
    if (s.rotation_period_ms !== undefined && s.rotation_period_ms > 0) e.rotationPeriod = BigInt(Math.floor(s.rotation_period_ms)) * 1000n; // microseconds
    if (s.rotation_period_msgs !== undefined && s.rotation_period_msgs > 0) e.rotationPeriodMessages = BigInt(Math.floor(s.rotation_period_msgs));
    const visibility = s.historyVisibility === undefined ? undefined : own(HISTORY_VISIBILITY, s.historyVisibility);
    if (visibility !== undefined) e.historyVisibility = visibility;
    return e;
  }

  /** Sends one request and hands the answer to the machine; throws when sending fails. */
  private async send(req: OutgoingRequest): Promise<void> {
    try {
      const answer = await sendOutgoingRequest(this.deps.api, this.who, req);
      if (req.id !== undefined) await this.machine.markRequestAsSent(req.id, req.type, answer);
    } catch (err) {
      this.deps.logger.warn({ ...this.who, request: requestKind(req), ...errorFields(err) }, 'crypto: request failed');
      throw err;
    }
  }

  /**
   * Sends what the machine wants sent (key uploads and queries, to-device messages, …), round after round
   * while answers produce more. A request that fails is logged and left with the machine, which offers it
   * again on the next flush; the failures are returned.
   */
  private async flushOutgoing(sentKinds?: Set<string>): Promise<FailedRequest[]> {
    const failed: FailedRequest[] = [];
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const requests = await this.machine.outgoingRequests();
      if (!requests.length) break;
      const results = await Promise.allSettled(requests.map((r) => this.send(r)));
      results.forEach((r, i) => {
        const kind = requestKind(requests[i]!);
        if (r.status === 'rejected') failed.push({ kind, error: r.reason });
        else sentKinds?.add(kind);
      });
      if (failed.length) break;
    }
    return failed;
  }

  /** Writes the store's databases to the CryptoStateStore. */
  private async persist(): Promise<void> {
    const data = await exportDatabases(storeDatabasePrefix(this.storeName));
    await this.deps.store.saveSnapshot(this.storeName, data);
    this.deps.logger.debug({ ...this.who, bytes: data.byteLength }, 'crypto: store saved');
  }
}
