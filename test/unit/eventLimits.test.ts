import { describe, expect, it } from 'vitest';
import { decodeBase64 } from '../../src/crypto/base64.js';
import { signingKeyFromSeed } from '../../src/crypto/signing.js';
import { checkFormat } from '../../src/federation/pipeline.js';
import { MatrixError } from '../../src/errors.js';
import { buildPdu } from '../../src/rooms/eventFormat.js';
import { assertValidLocalEvent, canonicalJsonProblem, eventKeysProblem, MAX_EVENT_NESTING } from '../../src/rooms/eventLimits.js';
import { getRoomVersion, type RoomVersion } from '../../src/rooms/roomVersions.js';
import { jsonNestingExceeds, MAX_BODY_NESTING } from '../../src/util/jsonNesting.js';

const rv = (id: string): RoomVersion => getRoomVersion(id)!;
const strict = { strictIntegers: true, maxNesting: 10 };
const lenient = { strictIntegers: false, maxNesting: 10 };
const nested = (levels: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
};

describe('canonicalJsonProblem', () => {
  it.each<[string, unknown, typeof strict, boolean]>([
    ['plain values', { a: [1, 'x', true, null, { b: -3 }] }, strict, true],
    ['a float', { n: 1.5 }, lenient, false],
    ['NaN', { n: Number.NaN }, lenient, false],
    ['Infinity (1e999)', { n: JSON.parse('1e999') }, lenient, false],
    ['2^53 in a strict version', { n: 2 ** 53 }, strict, false],
    ['-(2^53) in a strict version', { n: -(2 ** 53) }, strict, false],
    ['2^53-1 in a strict version', { n: 2 ** 53 - 1 }, strict, true],
    ['2^53 in a lenient version', { n: 2 ** 53 }, lenient, true],
    ['a lone high surrogate', { s: '\ud800' }, strict, false],
    ['a lone low surrogate', { s: 'a\udc00b' }, strict, false],
    ['a lone surrogate in a key', { '\ud800': 1 }, strict, false],
    ['a surrogate pair', { s: '\ud83d\ude00' }, strict, true],
    ['U+0000 in content (valid JSON, stored escaped)', { s: 'a\u0000b' }, strict, true],
    ['10 levels', nested(10), strict, true],
    ['11 levels', nested(11), strict, false],
    ['a Date', { d: new Date(0) }, strict, false],
    ['a function', { f: () => 1 }, strict, false],
    ['undefined property (omitted)', { u: undefined }, strict, true],
  ])('%s', (_name, value, rules, ok) => {
    expect(canonicalJsonProblem(value, rules) === null).toBe(ok);
  });

  it('walks 100,000 levels without overflowing the stack', () => {
    expect(canonicalJsonProblem(nested(100_000), { strictIntegers: true, maxNesting: 200_000 })).toBeNull();
  });
});

describe('eventKeysProblem', () => {
  const base = { type: 'm.room.message', sender: '@a:x', room_id: '!r:x' };
  it.each<[string, Record<string, unknown>, { countBytes: boolean }, null | { tooLarge: boolean }]>([
    ['ordinary keys', base, { countBytes: true }, null],
    ['255 ASCII bytes', { ...base, state_key: 'k'.repeat(255) }, { countBytes: true }, null],
    ['256 ASCII bytes', { ...base, state_key: 'k'.repeat(256) }, { countBytes: true }, { tooLarge: true }],
    ['128 two-byte codepoints, bytes counted', { ...base, type: 'é'.repeat(128) }, { countBytes: true }, { tooLarge: true }],
    ['128 two-byte codepoints, codepoints counted', { ...base, type: 'é'.repeat(128) }, { countBytes: false }, null],
    ['256 codepoints, codepoints counted', { ...base, sender: '@' + 'a'.repeat(255) }, { countBytes: false }, { tooLarge: true }],
    ['U+0000 in type', { ...base, type: 'm.\u0000' }, { countBytes: true }, { tooLarge: false }],
    ['a lone surrogate in state_key', { ...base, state_key: '\ud800' }, { countBytes: true }, { tooLarge: false }],
    ['a non-string sender', { ...base, sender: 5 }, { countBytes: true }, { tooLarge: false }],
  ])('%s', (_name, keys, opts, expected) => {
    const problem = eventKeysProblem(keys as never, opts);
    expect(problem === null ? null : { tooLarge: problem.tooLarge }).toEqual(expected);
  });
});

describe('assertValidLocalEvent', () => {
  const draft = { type: 'm.room.message', sender: '@a:x', roomId: '!r:x', content: { body: 'hi' } };
  const errorOf = (f: () => void): string | undefined => {
    try {
      f();
      return undefined;
    } catch (err) {
      return err instanceof MatrixError ? `${err.status} ${err.errcode}` : String(err);
    }
  };
  it.each<[string, Record<string, unknown>, string, string | undefined]>([
    ['a valid message', draft, '10', undefined],
    ['a float', { ...draft, content: { n: 0.5 } }, '10', '400 M_BAD_JSON'],
    ['2^53 in v10', { ...draft, content: { n: 2 ** 53 } }, '10', '400 M_BAD_JSON'],
    ['2^53 in v5', { ...draft, content: { n: 2 ** 53 } }, '5', undefined],
    // Content is level 2 of its PDU: it may nest MAX_EVENT_NESTING - 1 levels, itself included.
    ['content nested to the limit', { ...draft, content: { v: nested(MAX_EVENT_NESTING - 2) } }, '10', undefined],
    ['content nested one level more', { ...draft, content: { v: nested(MAX_EVENT_NESTING - 1) } }, '10', '400 M_BAD_JSON'],
    ['content over 65536 bytes', { ...draft, content: { body: 'x'.repeat(65_536) } }, '10', '413 M_TOO_LARGE'],
    ['a type over 255 bytes', { ...draft, type: 't'.repeat(256) }, '10', '413 M_TOO_LARGE'],
    ['a redaction of an id with U+0000', { ...draft, type: 'm.room.redaction', redacts: '$a\u0000' }, '10', '400 M_BAD_JSON'],
    ['content that is an array', { ...draft, content: [] }, '10', '400 M_BAD_JSON'],
  ])('%s', (_name, d, version, expected) => {
    expect(errorOf(() => assertValidLocalEvent(d as never, rv(version)))).toBe(expected);
  });
});

describe('checkFormat of received PDUs', () => {
  const key = signingKeyFromSeed('1', decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1'));
  const build = (version: RoomVersion, patch: Record<string, unknown> = {}) =>
    buildPdu(
      { room_id: '!r:example.org', sender: '@a:example.org', type: 'm.room.message', content: { body: 'hi' }, prev_events: ['$p'], auth_events: ['$a'], depth: 3, origin_server_ts: 1, ...patch },
      version,
      { serverName: 'example.org', key },
    ).pdu as unknown as Record<string, unknown>;

  it.each<[string, string, (p: Record<string, unknown>) => Record<string, unknown>, boolean]>([
    ['a valid event', '10', (p) => p, true],
    ['a float in content', '10', (p) => ({ ...p, content: { n: 1.5 } }), false],
    ['a lone surrogate in content', '10', (p) => ({ ...p, content: { body: '\ud800' } }), false],
    ['2^53 in v10', '10', (p) => ({ ...p, content: { n: 2 ** 53 } }), false],
    ['2^53 in v5', '5', (p) => ({ ...p, content: { n: 2 ** 53 } }), true],
    ['content nested to the limit', '10', (p) => ({ ...p, content: { v: nested(MAX_EVENT_NESTING - 2) } }), true],
    ['content nested one level more', '10', (p) => ({ ...p, content: { v: nested(MAX_EVENT_NESTING - 1) } }), false],
    ['over 65536 bytes', '10', (p) => ({ ...p, content: { body: 'x'.repeat(65_536) } }), false],
    ['a big unsigned (not part of the event)', '10', (p) => ({ ...p, unsigned: { x: 'x'.repeat(70_000) } }), true],
    ['a 128 × é state_key in v10 (codepoints)', '10', (p) => ({ ...p, state_key: 'é'.repeat(128) }), true],
    ['a 128 × é state_key in v11 (bytes)', '11', (p) => ({ ...p, state_key: 'é'.repeat(128) }), false],
    ['a 256-codepoint state_key in v10', '10', (p) => ({ ...p, state_key: 'k'.repeat(256) }), false],
    ['U+0000 in type', '10', (p) => ({ ...p, type: 'm.\u0000' }), false],
    ['U+0000 in a prev_events id', '10', (p) => ({ ...p, prev_events: ['$p\u0000'] }), false],
    ['U+0000 in a membership', '10', (p) => ({ ...p, type: 'm.room.member', state_key: '@a:example.org', content: { membership: 'join\u0000' } }), false],
  ])('%s', (_name, version, patch, ok) => {
    const v = rv(version);
    expect(checkFormat(patch(build(v)), v) === null).toBe(ok);
  });
});

describe('jsonNestingExceeds', () => {
  it.each<[string, string, number, boolean]>([
    ['flat object', '{"a":1}', 1, false],
    ['two levels, limit one', '{"a":[1]}', 1, true],
    ['brackets inside strings do not count', '{"a":"[[[[{{{{"}', 1, false],
    ['escaped quotes keep the string open', '{"a":"\\"[[[["}', 1, false],
    ['an escaped backslash closes the string', '{"a":"\\\\","b":[[1]]}', 2, true],
    ['siblings do not add up', '[[1],[2],[3]]', 2, false],
    ['5,000 levels', '['.repeat(5000) + ']'.repeat(5000), MAX_BODY_NESTING, true],
    [`${MAX_BODY_NESTING} levels`, '['.repeat(MAX_BODY_NESTING) + ']'.repeat(MAX_BODY_NESTING), MAX_BODY_NESTING, false],
  ])('%s', (_name, text, max, exceeds) => {
    expect(jsonNestingExceeds(text, max)).toBe(exceeds);
  });
});
