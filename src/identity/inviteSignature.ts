/**
 * The signature check of a third-party invite (spec: "m.room.member", third_party_invite; Synapse's
 * _check_signature): which of the public keys listed in the m.room.third_party_invite event verifies the
 * identity server's `signed` block. Pure: the key's validity URL is consulted by the caller.
 */
import { verifyJsonSignature } from '../crypto/signing.js';

export interface InviteKey {
  publicKey: string;
  keyValidityUrl: string | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `public_key` (with the top-level `key_validity_url`) first, then `public_keys`, as Synapse's get_public_keys. */
export function inviteKeys(inviteContent: Record<string, unknown>): InviteKey[] {
  const out: InviteKey[] = [];
  const url = (v: unknown) => (typeof v === 'string' ? v : undefined);
  if (typeof inviteContent.public_key === 'string') out.push({ publicKey: inviteContent.public_key, keyValidityUrl: url(inviteContent.key_validity_url) });
  if (Array.isArray(inviteContent.public_keys)) {
    for (const k of inviteContent.public_keys.slice(0, 32) as unknown[]) {
      if (isObject(k) && typeof k.public_key === 'string') out.push({ publicKey: k.public_key, keyValidityUrl: url(k.key_validity_url) });
    }
  }
  return out;
}

/** The first listed key under which some ed25519 signature of `signed` verifies, or undefined. */
export function keyThatSigned(signed: Record<string, unknown>, inviteContent: Record<string, unknown>): InviteKey | undefined {
  const sigs = signed.signatures;
  if (!isObject(sigs)) return undefined;
  for (const key of inviteKeys(inviteContent)) {
    for (const [entity, byKey] of Object.entries(sigs)) {
      if (!isObject(byKey)) continue;
      for (const keyId of Object.keys(byKey)) {
        if (keyId.startsWith('ed25519:') && verifyJsonSignature(signed, entity, keyId, key.publicKey)) return key;
      }
    }
  }
  return undefined;
}
