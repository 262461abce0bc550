import type { StoredSignature } from '../storage/repositories/e2ee.js';
import { dict } from '../util/dict.js';

/**
 * Adds uploaded signatures to a key object. Signatures a user made with their user-signing key on someone
 * else's master key are visible only to that user (spec: "Cross-signing").
 */
export function mergeStoredSignatures(
  key: Record<string, unknown>,
  ownerUserId: string,
  targetKeyId: string,
  stored: readonly StoredSignature[],
  viewerUserId: string,
): Record<string, unknown> {
  const signatures = Object.assign(dict<Record<string, string>>(), structuredClone(key.signatures as Record<string, Record<string, string>> | undefined));
  for (const s of stored) {
    if (s.targetUserId !== ownerUserId || s.targetKeyId !== targetKeyId) continue;
    if (s.signerUserId !== ownerUserId && s.signerUserId !== viewerUserId) continue;
    signatures[s.signerUserId] ??= dict();
    signatures[s.signerUserId]![s.signerKeyId] = s.signature;
  }
  // A key nobody signed keeps no `signatures` field, as Synapse returns it (SyTest compares master keys deeply).
  if (key.signatures === undefined && Object.keys(signatures).length === 0) return { ...key };
  return { ...key, signatures };
}
