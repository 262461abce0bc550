/**
 * ed25519 signing keys and JSON signatures (spec appendix "Signing JSON").
 * Built on node:crypto only.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { decodeBase64, encodeBase64 } from './base64.js';
import { canonicalJsonBytes } from './canonicalJson.js';
import { dict } from '../util/dict.js';

export interface SigningKey {
  algorithm: 'ed25519';
  /** The key version, e.g. `a_AbCd`. */
  version: string;
  /** `ed25519:<version>` */
  keyId: string;
  /** The 32-byte private seed. Never log this. */
  seed: Buffer;
  /** Unpadded base64 of the 32-byte public key. */
  publicKey: string;
}

/** Signatures block: entity (server name / user id) → key id → unpadded base64 signature. */
export type Signatures = Record<string, Record<string, string>>;

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const VERSION_RE = /^[A-Za-z0-9_]+$/;

// Building a KeyObject costs more than the signature itself; the server signs with one key all day.
const privateKeyCache = new WeakMap<Uint8Array, KeyObject>();

function privateKeyObject(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new Error('ed25519 seed must be 32 bytes');
  let key = privateKeyCache.get(seed);
  if (!key) {
    key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    privateKeyCache.set(seed, key);
  }
  return key;
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32) throw new Error('ed25519 public key must be 32 bytes');
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' });
}

/** Raw 32-byte public key for a seed. */
export function publicKeyFromSeed(seed: Uint8Array): Buffer {
  const der = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

export function signingKeyFromSeed(version: string, seed: Uint8Array): SigningKey {
  if (!VERSION_RE.test(version)) throw new Error(`invalid key version ${JSON.stringify(version)}`);
  const seedBuf = Buffer.from(seed);
  return {
    algorithm: 'ed25519',
    version,
    keyId: `ed25519:${version}`,
    seed: seedBuf,
    publicKey: encodeBase64(publicKeyFromSeed(seedBuf)),
  };
}

const VERSION_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A fresh random key; the version defaults to `a_` + 4 random alphanumerics (as Synapse does). */
export function generateSigningKey(version?: string): SigningKey {
  let v = version;
  if (v === undefined) {
    const bytes = randomBytes(4);
    v = 'a_' + Array.from(bytes, (b) => VERSION_ALPHABET[b % VERSION_ALPHABET.length]).join('');
  }
  return signingKeyFromSeed(v, randomBytes(32));
}

/**
 * Parse a Synapse-format signing key file: one `ed25519 <version> <base64 seed>`
 * per line. Blank lines and `#` comments are ignored. Throws on malformed lines.
 */
export function parseSigningKeyFile(text: string): SigningKey[] {
  const keys: SigningKey[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parts = line.split(/\s+/);
    if (parts.length !== 3 || parts[0] !== 'ed25519') {
      throw new Error(`signing key file line ${i + 1}: expected "ed25519 <version> <seed>"`);
    }
    let seed: Buffer;
    try {
      seed = decodeBase64(parts[2]!);
    } catch {
      throw new Error(`signing key file line ${i + 1}: seed is not base64`);
    }
    if (seed.length !== 32) throw new Error(`signing key file line ${i + 1}: seed must be 32 bytes`);
    keys.push(signingKeyFromSeed(parts[1]!, seed));
  });
  return keys;
}

export function formatSigningKeyFile(keys: readonly SigningKey[]): string {
  return keys.map((k) => `${k.algorithm} ${k.version} ${encodeBase64(k.seed)}\n`).join('');
}

/** Raw ed25519 signature (64 bytes) of `data`. */
export function signBytes(data: Uint8Array, key: SigningKey): Buffer {
  return sign(null, data, privateKeyObject(key.seed));
}

/** Verify a raw ed25519 signature; false on any malformed input. */
export function verifyBytes(data: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    if (signature.length !== 64) return false;
    return verify(null, data, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The bytes covered by a JSON signature: canonical JSON without `signatures` and `unsigned`. */
export function signableBytes(obj: object): Buffer {
  const { signatures: _s, unsigned: _u, ...rest } = obj as Record<string, unknown>;
  return canonicalJsonBytes(rest);
}

/**
 * Sign `obj` as `entityName` with `key`. Returns a new object (the input is not
 * modified) carrying the existing signatures plus the new one; `unsigned` is
 * kept but not covered.
 */
export function signJson<T extends object>(obj: T, entityName: string, key: SigningKey): T & { signatures: Signatures } {
  const src = obj as Record<string, unknown>;
  const signature = encodeBase64(signBytes(signableBytes(obj), key));
  const existing = isPlainObject(src.signatures) ? (src.signatures as Signatures) : {};
  const signatures: Signatures = dict();
  for (const [entity, sigs] of Object.entries(existing)) signatures[entity] = Object.assign(dict<string>(), sigs);
  signatures[entityName] = Object.assign(signatures[entityName] ?? dict<string>(), { [key.keyId]: signature });
  return { ...obj, signatures } as T & { signatures: Signatures };
}

/**
 * Check that `obj` carries a valid signature by `entityName` with `keyId`
 * under the given public key (unpadded base64). Never throws: any malformed
 * input (missing signature, bad base64, bad key, non-canonicalisable JSON)
 * yields false.
 */
export function verifyJsonSignature(obj: unknown, entityName: string, keyId: string, publicKeyBase64: string): boolean {
  try {
    if (!isPlainObject(obj) || !keyId.startsWith('ed25519:')) return false;
    const sigs = obj.signatures;
    if (!isPlainObject(sigs)) return false;
    const entity = sigs[entityName];
    if (!isPlainObject(entity)) return false;
    const sig = entity[keyId];
    if (typeof sig !== 'string') return false;
    return verifyBytes(signableBytes(obj), decodeBase64(sig), decodeBase64(publicKeyBase64));
  } catch {
    return false;
  }
}
