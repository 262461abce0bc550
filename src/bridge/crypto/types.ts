/**
 * What the bridge's end-to-end encryption layer needs from the outside world, and the shapes it hands back.
 */

/**
 * Durable state of the crypto layer, implemented by the bridge's database. A snapshot is one user's whole
 * crypto store (already encrypted by the store itself with the bridge's passphrase); a device is the one
 * device the bridge created for that user.
 */
export interface CryptoStateStore {
  loadSnapshot(storeName: string): Promise<Uint8Array | undefined>;
  saveSnapshot(storeName: string, data: Uint8Array): Promise<void>;
  deviceOf(userId: string): Promise<string | undefined>;
  saveDevice(userId: string, deviceId: string): Promise<void>;
}

/** pino-compatible (object first, then message). Never given keys, tokens or plaintext. */
export interface CryptoLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
  debug(obj: Record<string, unknown>, msg: string): void;
}

/** The room's m.room.encryption settings (as in its content) plus its history visibility. */
export interface RoomEncryptionSettings {
  rotation_period_ms?: number;
  rotation_period_msgs?: number;
  /** m.room.history_visibility: invited, joined, shared or world_readable. */
  historyVisibility?: string;
}

/** A decrypted timeline event: its clear type and content. */
export interface DecryptedEvent {
  type: string;
  content: Record<string, unknown>;
}

export const noopLogger: CryptoLogger = {
  info: () => {},
  warn: () => {},
  error: () => {},
  debug: () => {},
};
