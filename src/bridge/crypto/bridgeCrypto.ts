/**
 * The bridge's end-to-end encryption: one device and OlmMachine per bridge user that takes part in
 * encrypted rooms (the bot and each ghost), because clients reject a Megolm event whose sender is not the
 * owner of the device that created the session. Reaches the homeserver only through the application
 * service API (MSC2409 to-device, MSC3202 device data and masquerading, MSC4190 devices).
 */
import { initAsync } from '@matrix-org/matrix-sdk-crypto-wasm';
import { registerAppserviceUser, type HomeserverApi } from '../matrix/homeserverApi.js';
import { createDevice, newDeviceId } from './deviceProvisioning.js';
import { installIndexedDb } from './indexedDbGlobals.js';
import { StoreKeys } from './storeKeys.js';
import { inputFor, parseCryptoTransaction } from './transactionCrypto.js';
import { noopLogger, type CryptoLogger, type CryptoStateStore, type DecryptedEvent, type RoomEncryptionSettings } from './types.js';
import { UserMachine } from './userMachine.js';

export interface BridgeCryptoOptions {
  api: HomeserverApi;
  store: CryptoStateStore;
  /** Encrypts every crypto store; changing it makes the saved stores unreadable. */
  passphrase: string;
  logger?: CryptoLogger;
  /** Display name of the devices the bridge creates. */
  deviceDisplayName?: string;
}

/** An error's name and message for logs (Matrix errors carry no secrets; request bodies are never logged). */
const describe = (err: unknown): string => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));

/** The name of a user's crypto store (and of its snapshot in the CryptoStateStore). */
export const cryptoStoreName = (userId: string, deviceId: string): string => `skjol-bridge-crypto|${userId}|${deviceId}`;

export class BridgeCrypto {
  private readonly machines = new Map<string, UserMachine>();
  private readonly opening = new Map<string, Promise<UserMachine | undefined>>();
  private readonly logger: CryptoLogger;
  private starting: Promise<StoreKeys> | undefined;
  private keys: StoreKeys | undefined;
  private closed = false;

  constructor(private readonly opts: BridgeCryptoOptions) {
    this.logger = opts.logger ?? noopLogger;
  }

  /** Loads the wasm module, installs an IndexedDB where there is none, derives the store keys. Idempotent. */
  async start(): Promise<void> {
    this.starting ??= (async () => {
      installIndexedDb();
      await initAsync();
      return StoreKeys.derive(this.opts.passphrase);
    })();
    this.keys = await this.starting;
  }

  /** Whether the user's device is open in this process. */
  hasDevice(userId: string): boolean {
    return this.machines.has(userId);
  }

  /**
   * The user's device: the one saved for it (its machine restored from the snapshot), or a new one created
   * on the homeserver with its keys uploaded. Idempotent; concurrent calls share one opening.
   */
  async ensureDevice(userId: string): Promise<string> {
    const machine = await this.machineFor(userId, true);
    return machine!.deviceId;
  }

  /**
   * Hands one application service transaction's crypto data to the machines: to-device messages and key
   * counts to the device they are for (opening a saved device that is not open yet), device list changes
   * to every open machine. Each machine then sends what it has to send and saves its store. Throws when a
   * machine could not take its share (answer the transaction with an error so the homeserver retries).
   */
  async receiveTransaction(body: Record<string, unknown>): Promise<void> {
    this.assertOpen();
    const txn = parseCryptoTransaction(body);
    const errors: unknown[] = [];
    const targets = new Set<UserMachine>();
    for (const userId of txn.devices.keys()) {
      try {
        const machine = await this.machineFor(userId, false);
        if (machine && inputFor(txn, userId, machine.deviceId)) targets.add(machine);
      } catch (err) {
        this.logger.error({ userId, error: describe(err) }, 'crypto: cannot open device for transaction');
        errors.push(err);
      }
    }
    const listsChanged = txn.deviceLists.changed.length > 0 || txn.deviceLists.left.length > 0;
    if (listsChanged) for (const m of this.machines.values()) targets.add(m);
    const results = await Promise.allSettled([...targets].map((m) => m.receive(inputFor(txn, m.userId, m.deviceId), txn.deviceLists)));
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      const m = [...targets][i]!;
      this.logger.error({ userId: m.userId, deviceId: m.deviceId, error: describe(r.reason) }, 'crypto: device could not process the transaction');
      errors.push(r.reason);
    });
    if (errors.length) throw new AggregateError(errors, 'crypto: the transaction could not be processed by every device');
  }

  /** Encrypts an event as `userId` (creating its device if needed); returns the m.room.encrypted content. */
  async encryptEvent(
    userId: string,
    roomId: string,
    eventType: string,
    content: Record<string, unknown>,
    memberIds: string[],
    settings?: RoomEncryptionSettings,
  ): Promise<Record<string, unknown>> {
    const machine = (await this.machineFor(userId, true))!;
    return machine.encrypt(roomId, eventType, content, memberIds, settings);
  }

  /**
   * Decrypts a timeline event with the first of the candidates' devices that has its room key (saved
   * devices are opened; no device is created). Undefined when none can.
   */
  async decryptEvent(event: Record<string, unknown>, candidateUserIds: string[]): Promise<DecryptedEvent | undefined> {
    this.assertOpen();
    const roomId = event.room_id;
    if (typeof roomId !== 'string' || event.type !== 'm.room.encrypted') return undefined;
    for (const userId of new Set(candidateUserIds)) {
      const machine = await this.machineFor(userId, false);
      if (!machine) continue;
      const clear = await machine.decrypt(event, roomId);
      if (clear) return clear;
    }
    return undefined;
  }

  /** Saves every store and shuts the machines down. The instance cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.opening.values()]);
    const machines = [...this.machines.values()];
    this.machines.clear();
    const results = await Promise.allSettled(machines.map((m) => m.close()));
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (errors.length) throw new AggregateError(errors, 'crypto: some devices could not be saved');
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('BridgeCrypto is closed');
    if (!this.keys) throw new Error('BridgeCrypto.start() has not been called');
  }

  /**
   * The user's open machine, else its saved device opened, else (with `create`) a new device. Only one
   * opening per user runs at a time; a caller that wants a device created after another caller's lookup
   * found none starts its own.
   */
  private async machineFor(userId: string, create: boolean): Promise<UserMachine | undefined> {
    for (;;) {
      this.assertOpen();
      const open = this.machines.get(userId);
      if (open) return open;
      const pending = this.opening.get(userId);
      if (pending) {
        const m = await pending.catch(() => undefined);
        if (m || !create) return m;
        continue;
      }
      const p = this.openMachine(userId, create).finally(() => this.opening.delete(userId));
      this.opening.set(userId, p);
      return p;
    }
  }

  private async openMachine(userId: string, create: boolean): Promise<UserMachine | undefined> {
    const { store } = this.opts;
    const saved = await store.deviceOf(userId);
    if (saved !== undefined) {
      const storeName = cryptoStoreName(userId, saved);
      const snapshot = await store.loadSnapshot(storeName);
      if (snapshot) {
        const machine = await UserMachine.open(this.deps(), { userId, deviceId: saved, storeName, storeKey: this.keys!.keyFor(storeName), snapshot });
        await this.adopt(machine);
        this.logger.info({ userId, deviceId: saved, bytes: snapshot.byteLength }, 'crypto: device restored');
        await machine.resume().catch((err: unknown) => this.logger.warn({ userId, deviceId: saved, error: describe(err) }, 'crypto: catching up after restore failed'));
        return machine;
      }
      if (!create) return undefined;
      // The keys of that device were uploaded but its store was never saved: it cannot be used again.
      this.logger.warn({ userId, deviceId: saved }, 'crypto: saved device has no crypto store; a new device replaces it');
    }
    if (!create) return undefined;
    return this.createDevice(userId);
  }

  private async createDevice(userId: string): Promise<UserMachine> {
    const { api, store } = this.opts;
    await registerAppserviceUser(api, userId);
    const deviceId = newDeviceId();
    await createDevice(api, userId, deviceId, this.opts.deviceDisplayName ?? 'Skjól bridge');
    const storeName = cryptoStoreName(userId, deviceId);
    const machine = await UserMachine.open(this.deps(), { userId, deviceId, storeName, storeKey: this.keys!.keyFor(storeName) });
    try {
      await machine.uploadInitialKeys();
      // Only a device whose store is saved is recorded: a crash before this leaves an unused device behind,
      // never a recorded device whose keys are lost.
      await store.saveDevice(userId, deviceId);
    } catch (err) {
      await machine.close().catch(() => undefined);
      throw err;
    }
    await this.adopt(machine);
    this.logger.info({ userId, deviceId }, 'crypto: device created');
    return machine;
  }

  /** Makes the machine reachable, unless the bridge was closed meanwhile (then it is closed too). */
  private async adopt(machine: UserMachine): Promise<void> {
    if (this.closed) {
      await machine.close().catch(() => undefined);
      throw new Error('BridgeCrypto is closed');
    }
    this.machines.set(machine.userId, machine);
  }

  private deps() {
    return { api: this.opts.api, store: this.opts.store, logger: this.logger };
  }
}
