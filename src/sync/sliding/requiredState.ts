import type { RoomConfig } from './request.js';

// MSC4186 `required_state`: which state events a room entry carries. Pure: no I/O.

export const WILDCARD = '*';
export const LAZY = '$LAZY';
export const ME = '$ME';

export interface StateSelection {
  /** Every state event (a `*` type, as Synapse treats any wildcard type). */
  all: boolean;
  /** Event type → every key of the type (`*`) or these keys. */
  types: Map<string, '*' | Set<string>>;
  /** `["m.room.member", "$LAZY"]`: the members of the timeline's senders and targets. */
  lazyMembers: boolean;
}

export function selectionOf(required: ReadonlyMap<string, ReadonlySet<string>>, userId: string): StateSelection {
  const out: StateSelection = { all: required.has(WILDCARD), types: new Map(), lazyMembers: false };
  if (out.all) return out;
  for (const [type, keys] of required) {
    if (keys.has(WILDCARD)) {
      out.types.set(type, WILDCARD);
      continue;
    }
    const literal = new Set<string>();
    for (const key of keys) {
      if (type === 'm.room.member' && key === LAZY) out.lazyMembers = true;
      else literal.add(key === ME ? userId : key);
    }
    if (literal.size) out.types.set(type, literal);
  }
  return out;
}

export function selects(s: StateSelection, type: string, stateKey: string): boolean {
  if (s.all) return true;
  const keys = s.types.get(type);
  if (keys === undefined) return false;
  return keys === WILDCARD || keys.has(stateKey);
}

/** The larger of two configurations (a room in several lists and subscriptions). */
export function combine(a: RoomConfig, b: RoomConfig): RoomConfig {
  const requiredState = new Map<string, Set<string>>();
  for (const source of [a.requiredState, b.requiredState]) {
    for (const [type, keys] of source) {
      let into = requiredState.get(type);
      if (!into) requiredState.set(type, (into = new Set()));
      for (const k of keys) into.add(k);
    }
  }
  return { timelineLimit: Math.max(a.timelineLimit, b.timelineLimit), requiredState };
}

/** A stable text form, for storing and comparing configurations. */
export function serializeRequiredState(required: ReadonlyMap<string, ReadonlySet<string>>): string {
  const pairs: Array<[string, string]> = [];
  for (const [type, keys] of required) for (const k of keys) pairs.push([type, k]);
  pairs.sort((x, y) => (x[0] === y[0] ? cmp(x[1], y[1]) : cmp(x[0], y[0])));
  return JSON.stringify(pairs);
}

export function parseRequiredState(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const pairs: unknown = JSON.parse(text);
  if (!Array.isArray(pairs)) return out;
  for (const p of pairs) {
    if (!Array.isArray(p) || typeof p[0] !== 'string' || typeof p[1] !== 'string') continue;
    let keys = out.get(p[0]);
    if (!keys) out.set(p[0], (keys = new Set()));
    keys.add(p[1]);
  }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
