import { describe, expect, it } from 'vitest';
import { signJson, signingKeyFromSeed, verifyJsonSignature } from '../../src/crypto/signing.js';
import { KeyResponseError, MAX_KEY_VALIDITY_MS, checkServerKeys } from '../../src/federation/keyStore.js';

const KEY = signingKeyFromSeed('abc', Buffer.alloc(32, 3));
const OTHER = signingKeyFromSeed('xyz', Buffer.alloc(32, 4));
const NOW = 1_700_000_000_000;

const response = (over: Record<string, unknown> = {}, key = KEY) =>
  signJson(
    {
      server_name: 'b.example',
      valid_until_ts: NOW + 3600_000,
      verify_keys: { [KEY.keyId]: { key: KEY.publicKey } },
      old_verify_keys: { 'ed25519:old': { key: OTHER.publicKey, expired_ts: NOW - 1000 } },
      ...over,
    },
    'b.example',
    key,
  );

describe('checking a server key response', () => {
  it('accepts a self-signed response and yields current and old keys', () => {
    const { keys, rows } = checkServerKeys(response(), 'b.example', NOW);
    expect(rows).toEqual([
      { server_name: 'b.example', key_id: KEY.keyId, verify_key: KEY.publicKey, valid_until_ts: NOW + 3600_000, expired_ts: null, fetched_ts: NOW },
      { server_name: 'b.example', key_id: 'ed25519:old', verify_key: OTHER.publicKey, valid_until_ts: NOW - 1000, expired_ts: NOW - 1000, fetched_ts: NOW },
    ]);
    expect(verifyJsonSignature(keys, 'b.example', KEY.keyId, KEY.publicKey)).toBe(true);
  });

  it('trusts valid_until_ts for at most 7 days from fetching', () => {
    const { rows } = checkServerKeys(response({ valid_until_ts: NOW + 365 * 86400_000 }), 'b.example', NOW);
    expect(rows[0]!.valid_until_ts).toBe(NOW + MAX_KEY_VALIDITY_MS);
  });

  it('keeps only the origin signature (a notary re-signs what it serves)', () => {
    const notarised = signJson(response(), 'notary.example', OTHER);
    const { keys } = checkServerKeys(notarised, 'b.example', NOW);
    expect(Object.keys(keys.signatures!)).toEqual(['b.example']);
  });

  it('ignores keys of other algorithms', () => {
    const { rows } = checkServerKeys(response({ verify_keys: { [KEY.keyId]: { key: KEY.publicKey }, 'curve25519:x': { key: 'abc' } } }), 'b.example', NOW);
    expect(rows.map((r) => r.key_id)).toEqual([KEY.keyId, 'ed25519:old']);
  });

  it.each<[string, () => unknown, string]>([
    ['another server name', () => response(), 'a.example'],
    ['no signature', () => ({ ...response(), signatures: {} }), 'b.example'],
    ['a signature by a key not in verify_keys', () => response({}, OTHER), 'b.example'],
    ['a tampered body', () => ({ ...response(), valid_until_ts: NOW + 7200_000 }), 'b.example'],
    ['a bad signature next to a good one', () => {
      const r = response({ verify_keys: { [KEY.keyId]: { key: KEY.publicKey }, [OTHER.keyId]: { key: OTHER.publicKey } } });
      return { ...r, signatures: { 'b.example': { ...r.signatures['b.example'], [OTHER.keyId]: r.signatures['b.example']![KEY.keyId]! } } };
    }, 'b.example'],
    ['no valid_until_ts', () => response({ valid_until_ts: undefined }), 'b.example'],
    ['verify_keys missing', () => response({ verify_keys: undefined }), 'b.example'],
    ['a verify key without key', () => response({ verify_keys: { [KEY.keyId]: {} } }), 'b.example'],
    ['an old key without expired_ts', () => response({ old_verify_keys: { 'ed25519:old': { key: OTHER.publicKey } } }), 'b.example'],
    ['not an object', () => [1], 'b.example'],
  ])('rejects %s', (_name, make, serverName) => {
    expect(() => checkServerKeys(make(), serverName, NOW)).toThrow(KeyResponseError);
  });
});
