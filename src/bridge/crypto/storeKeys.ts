/**
 * The keys the crypto stores are encrypted with, derived from the bridge's passphrase: one slow scrypt
 * stretch at start-up (off the main thread), then one HKDF per store. The wasm store's own passphrase mode
 * runs PBKDF2 inside wasm on the main thread, blocking it for ~0.4 s on every machine opened; a bridge
 * opens one machine per ghost, so the stretching is done once here instead and the store is opened with a
 * raw 32-byte key (StoreHandle.openWithKey).
 */
import { hkdfSync, scrypt } from 'node:crypto';

const SALT = 'skjol-bridge-crypto-store/v1';

export class StoreKeys {
  private constructor(private readonly master: Buffer) {}

  static derive(passphrase: string): Promise<StoreKeys> {
    if (!passphrase) return Promise.reject(new Error('the crypto store passphrase must not be empty'));
    return new Promise((resolve, reject) => {
      scrypt(passphrase, SALT, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(new StoreKeys(key))));
    });
  }

  /** The 32-byte key of the store named `storeName`. */
  keyFor(storeName: string): Uint8Array {
    return new Uint8Array(hkdfSync('sha256', this.master, Buffer.alloc(0), `store:${storeName}`, 32));
  }
}
