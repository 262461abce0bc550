/**
 * What an event must satisfy before it is built, stored or relayed: canonical JSON of its room version and
 * the spec's size limits. Pure: no I/O. Every walk is iterative, so no input can overflow the stack.
 */
import { assertValidRetentionEvent } from './retentionPolicy.js';
import { MatrixError } from '../errors.js';
import type { RoomVersion } from './roomVersions.js';

/** Spec "Size limits": the whole PDU, federation format with signatures, as canonical JSON. */
export const MAX_PDU_BYTES = 65_536;
/** Spec "Size limits": sender, room_id, state_key and type, in bytes of UTF-8. */
export const MAX_KEY_BYTES = 255;
/** Objects and arrays nested deeper than this in a PDU (the PDU itself is level 1) are refused. */
export const MAX_EVENT_NESTING = 128;

const MAX_SAFE = 2 ** 53 - 1;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export interface JsonRules {
  /** Integers must lie in [-(2^53)+1, 2^53-1] (room versions with strict canonical JSON). */
  strictIntegers: boolean;
  /** Deepest nesting of objects and arrays; `value` itself is level 1 when it is one. */
  maxNesting: number;
}

function stringProblem(s: string, where: string): string | null {
  // A lone surrogate has no UTF-8 encoding, so no canonical JSON.
  return LONE_SURROGATE.test(s) ? `${where} contains a lone surrogate (not valid UTF-8)` : null;
}

function numberProblem(n: number, rules: JsonRules): string | null {
  if (!Number.isFinite(n)) return 'numbers must be finite integers';
  if (!Number.isInteger(n)) return 'floats are not allowed in canonical JSON';
  if (rules.strictIntegers && Math.abs(n) > MAX_SAFE) return `integer ${n} is outside [-(2^53)+1, 2^53-1]`;
  return null;
}

/**
 * The first reason `value` cannot be encoded as canonical JSON under `rules`, or null. Only JSON values
 * pass: plain objects, arrays, strings, finite integers, booleans and null.
 */
export function canonicalJsonProblem(value: unknown, rules: JsonRules): string | null {
  const stack: Array<{ v: unknown; depth: number }> = [{ v: value, depth: 0 }];
  while (stack.length) {
    const { v, depth } = stack.pop()!;
    switch (typeof v) {
      case 'string': {
        const p = stringProblem(v, 'a string');
        if (p) return p;
        continue;
      }
      case 'number': {
        const p = numberProblem(v, rules);
        if (p) return p;
        continue;
      }
      case 'boolean':
        continue;
      case 'undefined':
        // Omitted from objects as JSON.stringify does; only reachable as a property value.
        if (depth === 0) return 'not a JSON value';
        continue;
      case 'object': {
        if (v === null) continue;
        if (depth + 1 > rules.maxNesting) return `nested deeper than ${rules.maxNesting} levels`;
        if (Array.isArray(v)) {
          for (const item of v) stack.push({ v: item === undefined ? null : item, depth: depth + 1 });
          continue;
        }
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) return 'not a JSON object';
        for (const [key, item] of Object.entries(v)) {
          const p = stringProblem(key, 'a key');
          if (p) return p;
          stack.push({ v: item, depth: depth + 1 });
        }
        continue;
      }
      default:
        return `${typeof v} is not a JSON value`;
    }
  }
  return null;
}

/** True when `s` can be stored in a text column of either database: valid UTF-8 and no U+0000. */
export function isStorableString(s: string): boolean {
  return !LONE_SURROGATE.test(s) && !s.includes('\u0000');
}

/** Bytes of `s` as UTF-8 (lone surrogates count as 3, as their replacement would). */
export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** The fields of a PDU stored as columns and limited by the spec: sender, room_id, state_key, type. */
export interface EventKeys {
  type: unknown;
  sender: unknown;
  room_id?: unknown;
  state_key?: unknown;
}

/**
 * The first problem with the keys of an event, or null: each must be a string of at most 255 bytes, valid
 * UTF-8, without U+0000 (PostgreSQL text cannot hold it). `tooLarge` tells a size problem from a format one.
 */
export function eventKeysProblem(keys: EventKeys, opts: { countBytes: boolean }): { reason: string; tooLarge: boolean } | null {
  for (const name of ['type', 'sender', 'room_id', 'state_key'] as const) {
    const v = keys[name];
    if (v === undefined && (name === 'room_id' || name === 'state_key')) continue;
    if (typeof v !== 'string') return { reason: `${name} must be a string`, tooLarge: false };
    const bad = stringProblem(v, name);
    if (bad) return { reason: bad, tooLarge: false };
    if (v.includes('\u0000')) return { reason: `${name} contains U+0000`, tooLarge: false };
    // Codepoints always (as every server has counted them); bytes where the room version holds to the spec.
    if ([...v].length > MAX_KEY_BYTES || (opts.countBytes && utf8Bytes(v) > MAX_KEY_BYTES)) {
      return { reason: `${name} is longer than ${MAX_KEY_BYTES} bytes`, tooLarge: true };
    }
  }
  return null;
}

/** JSON rules for the content of an event of `version` (content sits at level 2 of its PDU). */
export function contentRules(version: RoomVersion): JsonRules {
  return { strictIntegers: version.strictCanonicalJson, maxNesting: MAX_EVENT_NESTING - 1 };
}

/** An event this server is about to build, before it joins a write batch. */
export interface LocalEventDraft {
  type: string;
  stateKey?: string | undefined;
  sender: string;
  roomId?: string | undefined;
  content: unknown;
  redacts?: string | undefined;
}

/**
 * Throws the spec's error when `draft` cannot become a valid event of `version`: 400 M_BAD_JSON for
 * content that is not canonical JSON, 413 M_TOO_LARGE (as Synapse) for a key or content over the limits.
 * The built PDU is checked once more (`pduSizeProblem`), as signatures and references add to its size.
 */
export function assertValidLocalEvent(draft: LocalEventDraft, version: RoomVersion, opts: { keysOnly?: boolean } = {}): void {
  const keys = eventKeysProblem(
    { type: draft.type, sender: draft.sender, room_id: draft.roomId, state_key: draft.stateKey },
    { countBytes: true },
  );
  if (keys) throw keys.tooLarge ? new MatrixError('M_TOO_LARGE', `Event ${keys.reason}`, 413) : new MatrixError('M_BAD_JSON', `Event ${keys.reason}`);
  if (draft.redacts !== undefined && !isStorableString(draft.redacts)) throw new MatrixError('M_BAD_JSON', 'Invalid event id to redact');
  if (opts.keysOnly) return;
  if (typeof draft.content !== 'object' || draft.content === null || Array.isArray(draft.content)) {
    throw new MatrixError('M_BAD_JSON', 'Event content must be a JSON object');
  }
  const problem = canonicalJsonProblem(draft.content, contentRules(version));
  if (problem) throw new MatrixError('M_BAD_JSON', `Event content is not valid canonical JSON: ${problem}`);
  // Valid content has the same length in JSON.stringify as in canonical JSON (only key order differs).
  if (utf8Bytes(JSON.stringify(draft.content)) > MAX_PDU_BYTES) {
    throw new MatrixError('M_TOO_LARGE', `Event content is larger than ${MAX_PDU_BYTES} bytes`, 413);
  }
  if (draft.type === 'm.room.retention') assertValidRetentionEvent(draft.stateKey, draft.content as Record<string, unknown>);
}

/** The built PDU's canonical JSON must fit the spec's limit; `canonicalBytes` is its length. */
export function pduSizeProblem(canonicalBytes: number): string | null {
  return canonicalBytes > MAX_PDU_BYTES ? `event is larger than ${MAX_PDU_BYTES} bytes` : null;
}

/**
 * Format rules beyond structure for a PDU received from another server: canonical JSON with the room
 * version's integer range, nesting, the whole-PDU limit and the key limits (bytes only where the room
 * version is strict about them, as Synapse from v11). Returns a reason, or null.
 */
export function receivedPduProblem(pdu: Record<string, unknown>, version: RoomVersion, canonicalBytes: () => number): string | null {
  const json = canonicalJsonProblem(pdu, { strictIntegers: version.strictCanonicalJson, maxNesting: MAX_EVENT_NESTING });
  if (json) return `not canonical JSON: ${json}`;
  const keys = eventKeysProblem(pdu as unknown as EventKeys, { countBytes: version.strictKeyByteLimits });
  if (keys) return keys.reason;
  // Values stored in columns or used in queries; PostgreSQL text cannot hold U+0000.
  const content = pdu.content as Record<string, unknown> | undefined;
  const columns = [pdu.event_id, pdu.redacts, content?.redacts, pdu.type === 'm.room.member' ? content?.membership : undefined];
  for (const refs of [pdu.prev_events, pdu.auth_events]) {
    if (Array.isArray(refs)) for (const r of refs) columns.push(Array.isArray(r) ? r[0] : r);
  }
  if (columns.some((v) => typeof v === 'string' && v.includes('\u0000'))) return 'an id or membership contains U+0000';
  return pduSizeProblem(canonicalBytes());
}
