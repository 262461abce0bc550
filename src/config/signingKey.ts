import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatSigningKeyFile, generateSigningKey, parseSigningKeyFile, type SigningKey } from '../crypto/signing.js';
import { ensurePrivateDir, tightenFile } from '../storage/fileModes.js';
import { ConfigError } from './load.js';

/** Loads the server's ed25519 key, generating it (mode 0600) on first start. */
export function loadOrCreateSigningKey(path: string): SigningKey {
  if (existsSync(path)) {
    tightenFile(path);
    const keys = parseSigningKeyFile(readFileSync(path, 'utf8'));
    const key = keys[0];
    if (!key) throw new ConfigError(`signing_key_path: ${path} holds no ed25519 key`);
    return key;
  }
  const key = generateSigningKey();
  ensurePrivateDir(dirname(path));
  writeFileSync(path, formatSigningKeyFile([key]), { mode: 0o600 });
  chmodSync(path, 0o600);
  return key;
}
