import { describe, expect, it } from 'vitest';
import { hashPassword, needsRehash, verifyPassword } from '../../src/users/passwords.js';
import { LruCache } from '../../src/util/lru.js';
import { registrationMac } from '../../src/users/sharedSecret.js';
import { hashToken, generateAccessToken } from '../../src/users/tokens.js';
import { checkLocalpart, generateDeviceId, generateLocalpart, normalizeUsername, parseLoginUser } from '../../src/users/usernames.js';

describe('usernames', () => {
  it.each([
    ['alice', undefined],
    ['a.b_c=d-e/f+g', undefined],
    ['0123', undefined],
    ['', 'empty'],
    ['Alice', 'invalid_chars'],
    ['al ice', 'invalid_chars'],
    ['al:ice', 'invalid_chars'],
    ['alïce', 'invalid_chars'],
    ['x'.repeat(250), 'too_long'],
  ])('checkLocalpart(%j) → %s', (localpart, problem) => {
    expect(checkLocalpart(localpart, 'example.org')).toBe(problem);
  });

  it('maps usernames logically before checking', () => {
    expect(normalizeUsername('Alice')).toBe('alice');
    // SyTest "POST /register rejects registration of usernames with '\n'": whitespace is refused, not trimmed.
    expect(checkLocalpart(normalizeUsername('alice\n'), 'example.org')).toBe('invalid_chars');
  });

  it.each([
    ['alice', '@alice:example.org'],
    ['@alice:example.org', '@alice:example.org'],
    ['@Old_Style:example.org', '@Old_Style:example.org'],
    ['@alice:other.org', undefined],
    ['@alice', undefined],
    ['ali:ce', undefined],
  ])('parseLoginUser(%j) → %s', (input, expected) => {
    expect(parseLoginUser(input, 'example.org')).toBe(expected);
  });

  it('generates valid localparts and device ids', () => {
    expect(checkLocalpart(generateLocalpart(), 'example.org')).toBeUndefined();
    expect(generateDeviceId()).toMatch(/^[A-Z]{10}$/);
  });
});

describe('passwords', () => {
  it('hashes in a self-describing format and verifies', async () => {
    const hash = await hashPassword('correct horse', { ln: 10, r: 8, p: 1 });
    expect(hash).toMatch(/^\$scrypt\$ln=10,r=8,p=1\$/);
    expect(await verifyPassword('correct horse', hash)).toBe(true);
    expect(await verifyPassword('wrong horse', hash)).toBe(false);
    expect(needsRehash(hash)).toBe(true);
    expect(needsRehash(hash, { ln: 10, r: 8, p: 1 })).toBe(false);
  });

  it('salts every hash', async () => {
    const params = { ln: 10, r: 8, p: 1 };
    expect(await hashPassword('same', params)).not.toBe(await hashPassword('same', params));
  });

  it('treats unknown or absurd formats as a mismatch', async () => {
    expect(await verifyPassword('x', 'plaintext')).toBe(false);
    expect(await verifyPassword('x', '$scrypt$ln=40,r=8,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).toBe(false);
  });

  it('uses the default cost', async () => {
    const hash = await hashPassword('pw');
    expect(hash).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$/);
    expect(needsRehash(hash)).toBe(false);
  });
});

describe('tokens', () => {
  it('are prefixed, random, and hashed to 64 hex chars', () => {
    const a = generateAccessToken();
    expect(a).toMatch(/^skj_[A-Za-z0-9_-]{40}$/);
    expect(a).not.toBe(generateAccessToken());
    expect(hashToken(a)).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('LruCache', () => {
  it('evicts the least recently used entry and expires entries', () => {
    let now = 0;
    const cache = new LruCache<string, number>(2, 100, () => now);
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(1);
    now = 200;
    expect(cache.get('a')).toBeUndefined();
  });
});

describe('shared-secret registration MAC', () => {
  it('matches HMAC-SHA1 over the NUL-separated fields, as Synapse computes it', () => {
    // Computed independently: printf 'abc\0bob\0pw\0notadmin' | openssl dgst -sha1 -hmac secret
    expect(registrationMac('secret', { nonce: 'abc', username: 'bob', password: 'pw', admin: false })).toBe(
      EXPECTED_MAC,
    );
  });
});

const EXPECTED_MAC = '8ea9b87daa4e529ce4a0832f09be19bbe837a0af';
