// Hostile values for the route fuzzer: strings, JSON values and raw JSON text an attacker would try.
import fc from 'fast-check';

/** Strings that have broken parsers, SQL, object lookups and path handling somewhere before. */
export const HOSTILE_ATOMS: readonly string[] = [
  '', ' ', '.', '..', '../..', '../../../../etc/passwd', '/', '//', '\\', '__proto__', 'constructor', 'prototype',
  'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'then', '\u0000', '\u0000abc', '\ud800', '\udfff',
  'a\ud800b', '\ufeff', '\u202e', '\u{1F600}', 'null', 'undefined', 'true', '[]', '{}', '-1', '0', '-0', '1.5',
  '1e999', '-1e999', 'NaN', 'Infinity', '9007199254740993', '-9223372036854775809', '99999999999999999999',
  '0x1f', ' 1', "'; DROP TABLE users;--", '" OR 1=1 --', '%', '%%', '%00', '%zz', '%c3%28', '%ed%a0%80', '%2F',
  '%25', '@', '@:', '!:', '$', '#', ':', '::', '@a:b:c:d', '!x:[::1]', '@user:127.0.0.1:1', '#alias:127.0.0.1:1',
  '!room:localhost', '$event:localhost', 'ed25519:', 'ed25519:AAAA', 'm.room.message', 'm.room.member',
  'm.room.power_levels', 'm.room.create', '*', '?', '&', '=', '\r\n', '\t', '<script>', '${x}', '{{x}}',
];

const LONG_LENGTHS = [256, 1024, 5000, 20_000];

/** A hostile string: a known-bad atom, random code points (lone surrogates included), a combination, or a long run. */
export function hostileString(maxLength = 40): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...HOSTILE_ATOMS) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength }) },
    { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom('%', '.', '/', '@', ':', '!', '$', '#', '\\', '\u0000', '\ud800', 'a', 'é', '\u{1F600}'), maxLength }) },
    { weight: 1, arbitrary: fc.array(fc.constantFrom(...HOSTILE_ATOMS), { minLength: 2, maxLength: 4 }).map((a) => a.join('')) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...LONG_LENGTHS), fc.constantFrom('a', 'é', '\u{1F600}', '%', '.')).map(([n, c]) => c.repeat(n)) },
  );
}

/** Keys that have polluted prototypes or confused lookups. */
export const HOSTILE_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '', '\ud800', 'a.b', '$ref'];

/** An object with no prototype, so a key named `__proto__` is an own property JSON.stringify writes out. */
export function bareObject(entries: Iterable<readonly [string, unknown]>): Record<string, unknown> {
  const o = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of entries) o[k] = v;
  return o;
}

/** Any JSON value, biased towards the ones servers get wrong: floats, huge integers, wrong types, prototype keys. */
export function hostileJson(realStrings: readonly string[]): fc.Arbitrary<unknown> {
  const leaf = fc.oneof(
    { weight: 3, arbitrary: hostileString() },
    { weight: 2, arbitrary: fc.constantFrom(...realStrings) },
    { weight: 2, arbitrary: fc.integer() },
    { weight: 1, arbitrary: fc.constantFrom(2 ** 53, -(2 ** 53), 2 ** 63, 1e300, -1, 0, 1.5, 0.1, -0.5) },
    { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
    { weight: 1, arbitrary: fc.boolean() },
    { weight: 1, arbitrary: fc.constant(null) },
  );
  const key = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...HOSTILE_KEYS, ...realStrings) }, { weight: 1, arbitrary: hostileString(12) });
  const { tree } = fc.letrec<{ tree: unknown }>((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { weight: 4, arbitrary: leaf },
      { weight: 1, arbitrary: fc.array(tie('tree'), { maxLength: 4 }) },
      { weight: 1, arbitrary: fc.array(fc.tuple(key, tie('tree')), { maxLength: 4 }).map(bareObject) },
    ),
  }));
  return tree;
}

/**
 * Raw JSON text that JSON.stringify never produces: out-of-range and non-canonical numbers, lone surrogate
 * escapes, deep nesting, duplicate keys. Spliced into an otherwise sensible body at one value's place.
 */
export const RAW_JSON_VALUES: readonly string[] = [
  '1e999', '-1e999', '1E400', '1.5', '-0', '1.0', '1e2', '12345678901234567890', '-12345678901234567890',
  '9007199254740993', '"\\ud800"', '"\\udc00x"', '"a\\ud83d"', '"\\u0000"', '{"a":1,"a":2}',
  '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"polluted":1}}}',
  '['.repeat(5000) + ']'.repeat(5000), '{"a":'.repeat(5000) + '1' + '}'.repeat(5000),
  '['.repeat(100) + ']'.repeat(100), '"' + 'x'.repeat(200_000) + '"',
];

/** Raw bytes inside a JSON string that are not UTF-8. */
export const INVALID_UTF8: readonly Buffer[] = [
  Buffer.from([0xff]), Buffer.from([0xc3, 0x28]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
  Buffer.from([0xe2, 0x82]), Buffer.from([0xc0, 0xaf]),
];

/** Whole bodies that are not a JSON object, or not JSON. */
export const RAW_BODIES: readonly Buffer[] = [
  '', ' ', 'null', 'true', '1', '"s"', '[]', '[{}]', '{', '}', '{"a":}', '{"a":1,}', "{'a':1}", 'x', '\ufeff{}',
  '{}garbage', '{"a":1}{"b":2}', '{"a":NaN}', '{"a":Infinity}', '{"a":undefined}',
  '['.repeat(10_000) + ']'.repeat(10_000), '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000),
  '{' + Array.from({ length: 20_000 }, (_, i) => `"k${i}":${i}`).join(',') + '}',
].map((s) => Buffer.from(s, 'utf8')).concat([
  Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]), Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), Buffer.from([0x00, 0x00, 0x00]),
  Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
]);

/** Percent-encodes every UTF-8 byte that is not unreserved; lone surrogates become their (invalid) CESU-8 bytes. */
export function percentEncode(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xd800 && cp <= 0xdfff) {
      out += `%${(0xe0 | (cp >> 12)).toString(16).toUpperCase()}%${(0x80 | ((cp >> 6) & 0x3f)).toString(16).toUpperCase()}%${(0x80 | (cp & 0x3f)).toString(16).toUpperCase()}`;
    } else if (/^[A-Za-z0-9\-_.~]$/.test(ch)) {
      out += ch;
    } else {
      for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out;
}

/** Characters node:http sends in a request target as they are (it refuses controls, spaces and code points above U+00FF). */
function rawPathSafe(s: string): string {
  return [...s].map((ch) => (/^[\x21-\x7e\x80-\xff]$/.test(ch) && !'/?#'.includes(ch) ? ch : percentEncode(ch))).join('');
}

/** How a value is written into a path segment or query: properly encoded, raw, or with broken %-sequences. */
export function encodedComponent(value: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: value.map(percentEncode) },
    { weight: 2, arbitrary: value.map(rawPathSafe) },
    { weight: 1, arbitrary: fc.tuple(value.map(percentEncode), fc.constantFrom('%', '%G1', '%c3%28', '%ED%A0%80', '%00', '%2e%2e', '%252F', '%u0041', '%F0%9F')).map(([v, bad]) => v + bad) },
  );
}
