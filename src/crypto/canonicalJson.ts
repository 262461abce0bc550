/**
 * Canonical JSON (spec appendix "Canonical JSON"): the shortest UTF-8 JSON
 * encoding, object keys sorted by Unicode codepoint, integers only.
 */

export class CanonicalJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CanonicalJsonError';
  }
}

export interface CanonicalJsonOptions {
  /**
   * Reject integers outside [-(2**53)+1, (2**53)-1]. Required by room
   * versions 6+ (`RoomVersion.strictCanonicalJson`); older rooms may carry
   * out-of-range values, so it is off by default.
   */
  strictIntegers?: boolean;
  /**
   * Encode non-integer numbers in their shortest form instead of refusing them: only for checking a request
   * signature over a body that is then refused with M_BAD_JSON (as Synapse's does), never for events.
   */
  allowFloats?: boolean;
}

const MAX_SAFE = 2 ** 53 - 1;

/** Sort by Unicode codepoint (JS default sort compares UTF-16 code units, which differs above U+FFFF). */
function compareCodepoints(a: string, b: string): number {
  if (a === b) return 0;
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const ca = ia.next();
    const cb = ib.next();
    if (ca.done) return cb.done ? 0 : -1;
    if (cb.done) return 1;
    const pa = ca.value.codePointAt(0)!;
    const pb = cb.value.codePointAt(0)!;
    if (pa !== pb) return pa < pb ? -1 : 1;
  }
}

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/g;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function encodeString(s: string): string {
  // Lone surrogates cannot be encoded as UTF-8.
  if (LONE_SURROGATE.test(s)) throw new CanonicalJsonError('string contains a lone surrogate');
  return (
    '"' +
    s.replace(NEEDS_ESCAPE, (c) => SHORT_ESCAPES[c] ?? '\\u00' + c.charCodeAt(0).toString(16).padStart(2, '0')) +
    '"'
  );
}

function encodeNumber(n: number, strict: boolean, floats: boolean): string {
  if (!Number.isFinite(n)) throw new CanonicalJsonError(`non-finite number ${n}`);
  if (floats && !Number.isInteger(n)) return String(n);
  if (!Number.isInteger(n)) throw new CanonicalJsonError(`float ${n} not allowed in canonical JSON`);
  if (strict && (n > MAX_SAFE || n < -MAX_SAFE)) {
    throw new CanonicalJsonError(`integer ${n} outside the canonical JSON range`);
  }
  if (Object.is(n, -0)) return '0';
  // Integers beyond 1e21 would be printed with an exponent by Number#toString.
  return Math.abs(n) < 1e21 ? String(n) : BigInt(n).toString();
}

function encode(value: unknown, strict: boolean, seen: Set<object>, floats = false): string {
  switch (typeof value) {
    case 'string':
      return encodeString(value);
    case 'number':
      return encodeNumber(value, strict, floats);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      if (strict && (value > BigInt(MAX_SAFE) || value < -BigInt(MAX_SAFE))) {
        throw new CanonicalJsonError(`integer ${value} outside the canonical JSON range`);
      }
      return value.toString();
    case 'object': {
      if (value === null) return 'null';
      if (seen.has(value)) throw new CanonicalJsonError('cyclic structure');
      seen.add(value);
      try {
        if (Array.isArray(value)) {
          return '[' + value.map((v) => (v === undefined ? 'null' : encode(v, strict, seen, floats))).join(',') + ']';
        }
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          throw new CanonicalJsonError(`cannot encode ${proto?.constructor?.name ?? 'object'} as canonical JSON`);
        }
        const obj = value as Record<string, unknown>;
        const keys = Object.keys(obj)
          .filter((k) => obj[k] !== undefined)
          .sort(compareCodepoints);
        return '{' + keys.map((k) => encodeString(k) + ':' + encode(obj[k], strict, seen, floats)).join(',') + '}';
      } finally {
        seen.delete(value);
      }
    }
    default:
      throw new CanonicalJsonError(`cannot encode ${typeof value} as canonical JSON`);
  }
}

/**
 * Encode `value` as canonical JSON. Object properties whose value is
 * `undefined` are omitted (as JSON.stringify does). Throws
 * `CanonicalJsonError` on floats, non-finite numbers, non-plain objects,
 * cycles, lone surrogates and (with `strictIntegers`) out-of-range integers.
 */
export function canonicalJson(value: unknown, opts?: CanonicalJsonOptions): string {
  return encode(value, opts?.strictIntegers ?? false, new Set(), opts?.allowFloats ?? false);
}

/** Canonical JSON as UTF-8 bytes, ready for hashing or signing. */
export function canonicalJsonBytes(value: unknown, opts?: CanonicalJsonOptions): Buffer {
  return Buffer.from(canonicalJson(value, opts), 'utf8');
}
