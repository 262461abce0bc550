import { describe, expect, it } from 'vitest';
import { decodeBase64, encodeBase64, encodeBase64Url } from '../../src/crypto/base64.js';
import { canonicalJson, CanonicalJsonError } from '../../src/crypto/canonicalJson.js';
import {
  formatSigningKeyFile,
  generateSigningKey,
  parseSigningKeyFile,
  signBytes,
  signingKeyFromSeed,
  signJson,
  verifyBytes,
  verifyJsonSignature,
} from '../../src/crypto/signing.js';

describe('unpadded base64 (spec appendix examples)', () => {
  it.each([
    ['', ''],
    ['f', 'Zg'],
    ['fo', 'Zm8'],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg'],
    ['fooba', 'Zm9vYmE'],
    ['foobar', 'Zm9vYmFy'],
  ])('%j -> %j', (plain, encoded) => {
    expect(encodeBase64(Buffer.from(plain))).toBe(encoded);
    expect(decodeBase64(encoded).toString()).toBe(plain);
  });

  it('URL-safe alphabet and decoding of all forms', () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0xfe]);
    expect(encodeBase64(bytes)).toBe('+/+//g');
    expect(encodeBase64Url(bytes)).toBe('-_-__g');
    for (const s of ['+/+//g', '+/+//g==', '-_-__g', '-_-__g==']) expect(decodeBase64(s).equals(bytes)).toBe(true);
  });

  it('encodes subarray views correctly', () => {
    const buf = Buffer.from('xxfooxx').subarray(2, 5);
    expect(encodeBase64(new Uint8Array(buf.buffer, buf.byteOffset, buf.length))).toBe('Zm9v');
  });

  it.each(['Zm9v!', 'Z', 'Zm9vY=', 'Zm=9v', 'Zg='])('rejects %j', (s) => {
    expect(() => decodeBase64(s)).toThrow();
  });
});

describe('canonical JSON (spec appendix examples)', () => {
  it.each([
    ['{}', '{}'],
    ['{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'],
    ['{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'],
    ['{"b":"2","a":"1"}', '{"a":"1","b":"2"}'],
    [
      `{"auth":{"success":true,"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"medium":"email","address":"john.doe@example.org"},{"medium":"msisdn","address":"123456789"}]}}}`,
      '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ],
    ['{"a": "日本語"}', '{"a":"日本語"}'],
    ['{"本": 2, "日": 1}', '{"日":1,"本":2}'],
    ['{"a": "\\u65E5"}', '{"a":"日"}'],
    ['{"a": null}', '{"a":null}'],
    ['{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'],
  ])('%s', (input, expected) => {
    expect(canonicalJson(JSON.parse(input))).toBe(expected);
  });

  it('uses the shortest escapes', () => {
    const s = 'q"b\\\b\f\n\r\t\u0000\u0001\u001f\u007f/é\u2028😀';
    expect(canonicalJson(s)).toBe('"q\\"b\\\\\\b\\f\\n\\r\\t\\u0000\\u0001\\u001f\u007f/é\u2028😀"');
  });

  it('sorts keys by codepoint, not UTF-16 unit', () => {
    // U+1F600 (surrogates D83D..) sorts after U+FF21 by codepoint but before it by UTF-16 units.
    expect(canonicalJson({ '😀': 1, 'Ａ': 2, a: 3 })).toBe('{"a":3,"Ａ":2,"😀":1}');
  });

  it('nests arrays and drops undefined properties', () => {
    expect(canonicalJson({ z: [3, { y: true, x: false }], u: undefined })).toBe('{"z":[3,{"x":false,"y":true}]}');
  });

  it.each([1.5, Number.NaN, Infinity, -0.1])('rejects non-integer %s', (n) => {
    expect(() => canonicalJson({ n })).toThrow(CanonicalJsonError);
  });

  it('range check only with strictIntegers', () => {
    const max = 2 ** 53 - 1;
    expect(canonicalJson({ n: max }, { strictIntegers: true })).toBe(`{"n":${max}}`);
    expect(canonicalJson({ n: -max }, { strictIntegers: true })).toBe(`{"n":-${max}}`);
    expect(() => canonicalJson({ n: 2 ** 53 }, { strictIntegers: true })).toThrow(CanonicalJsonError);
    expect(() => canonicalJson({ n: -(2 ** 53) }, { strictIntegers: true })).toThrow(CanonicalJsonError);
    expect(canonicalJson({ n: 2 ** 53 })).toBe('{"n":9007199254740992}');
    expect(canonicalJson({ n: 1e21 })).toBe('{"n":1000000000000000000000}');
  });

  it('rejects lone surrogates, non-plain objects and cycles', () => {
    expect(() => canonicalJson('\ud800')).toThrow(CanonicalJsonError);
    expect(() => canonicalJson(new Date())).toThrow(CanonicalJsonError);
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => canonicalJson(a)).toThrow(CanonicalJsonError);
  });
});

// Spec appendix "Cryptographic Test Vectors".
const SEED = decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1');
const KEY = signingKeyFromSeed('1', SEED);

describe('ed25519 signing keys', () => {
  it('derives the known public key from the spec seed', () => {
    expect(KEY.keyId).toBe('ed25519:1');
    expect(KEY.publicKey).toBe('XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI');
  });

  it('round-trips the Synapse key file format', () => {
    const text = formatSigningKeyFile([KEY]);
    expect(text).toBe(`ed25519 1 ${encodeBase64(SEED)}\n`);
    const [parsed, ...rest] = parseSigningKeyFile(`# comment\n\n${text}`);
    expect(rest).toHaveLength(0);
    expect(parsed!.publicKey).toBe(KEY.publicKey);
    expect(parsed!.keyId).toBe('ed25519:1');
  });

  it.each(['ed25519 1', 'rsa 1 AAAA', 'ed25519 1 Zm9v', 'ed25519 b@d ' + encodeBase64(SEED)])(
    'rejects key file line %j',
    (line) => {
      expect(() => parseSigningKeyFile(line)).toThrow();
    },
  );

  it('generates random keys with a_XXXX versions', () => {
    const k = generateSigningKey();
    expect(k.version).toMatch(/^a_[A-Za-z0-9]{4}$/);
    expect(k.seed).toHaveLength(32);
    expect(generateSigningKey('v2').keyId).toBe('ed25519:v2');
    const sig = signBytes(Buffer.from('hi'), k);
    expect(verifyBytes(Buffer.from('hi'), sig, decodeBase64(k.publicKey))).toBe(true);
    expect(verifyBytes(Buffer.from('ho'), sig, decodeBase64(k.publicKey))).toBe(false);
    expect(verifyBytes(Buffer.from('hi'), sig.subarray(1), decodeBase64(k.publicKey))).toBe(false);
    expect(verifyBytes(Buffer.from('hi'), sig, Buffer.alloc(3))).toBe(false);
  });
});

describe('JSON signing (spec known-answer vectors)', () => {
  it('signs an empty object', () => {
    expect(signJson({}, 'domain', KEY)).toEqual({
      signatures: {
        domain: {
          'ed25519:1': 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ',
        },
      },
    });
  });

  it('signs {"one":1,"two":"Two"}', () => {
    const input = { one: 1, two: 'Two' };
    const signed = signJson(input, 'domain', KEY);
    expect(signed).toEqual({
      one: 1,
      signatures: {
        domain: {
          'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw',
        },
      },
      two: 'Two',
    });
    expect(input).toEqual({ one: 1, two: 'Two' }); // not mutated
    expect(verifyJsonSignature(signed, 'domain', 'ed25519:1', KEY.publicKey)).toBe(true);
  });

  it('ignores signatures and unsigned, keeps other signatures', () => {
    const other = signingKeyFromSeed('2', Buffer.alloc(32, 7));
    const withExtras = {
      one: 1,
      two: 'Two',
      unsigned: { age_ts: 5 },
      signatures: { 'other.example': { 'ed25519:x': 'abc' } },
    };
    const signed = signJson(withExtras, 'domain', KEY);
    expect(signed.signatures.domain!['ed25519:1']).toBe(
      'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw',
    );
    expect(signed.signatures['other.example']).toEqual({ 'ed25519:x': 'abc' });
    expect(signed.unsigned).toEqual({ age_ts: 5 });
    const twice = signJson(signed, 'domain', other);
    expect(Object.keys(twice.signatures.domain!).sort()).toEqual(['ed25519:1', 'ed25519:2']);
    expect(verifyJsonSignature(twice, 'domain', 'ed25519:1', KEY.publicKey)).toBe(true);
    expect(verifyJsonSignature(twice, 'domain', 'ed25519:2', other.publicKey)).toBe(true);
  });

  it('verification fails (without throwing) on bad input', () => {
    const signed = signJson({ one: 1 }, 'domain', KEY);
    const cases: Array<[unknown, string, string, string]> = [
      [{ ...signed, one: 2 }, 'domain', 'ed25519:1', KEY.publicKey],
      [signed, 'other', 'ed25519:1', KEY.publicKey],
      [signed, 'domain', 'ed25519:2', KEY.publicKey],
      [signed, 'domain', 'ed25519:1', 'not base64!'],
      [signed, 'domain', 'ed25519:1', 'Zm9v'],
      [{ ...signed, signatures: { domain: { 'ed25519:1': '!!' } } }, 'domain', 'ed25519:1', KEY.publicKey],
      [{ ...signed, signatures: 'x' }, 'domain', 'ed25519:1', KEY.publicKey],
      [{ ...signed, bad: 1.5 }, 'domain', 'ed25519:1', KEY.publicKey],
      [null, 'domain', 'ed25519:1', KEY.publicKey],
      ['str', 'domain', 'ed25519:1', KEY.publicKey],
    ];
    for (const [obj, entity, keyId, pk] of cases) {
      expect(verifyJsonSignature(obj, entity, keyId, pk)).toBe(false);
    }
    // unsigned may change freely
    expect(verifyJsonSignature({ ...signed, unsigned: { x: 1 } }, 'domain', 'ed25519:1', KEY.publicKey)).toBe(true);
  });
});
