/**
 * State resolution v1 (room version 1), spec "Room Version 1: State
 * resolution". Known to reset state; kept for rooms that still use it.
 *
 * Where the spec's prose is loose this follows what Synapse has always done,
 * since v1 rooms only converge if servers agree:
 * - a key is conflicted only when two state sets hold different events for
 *   it; a key some sets lack is unconflicted;
 * - power levels, then join rules, then member events are resolved key by key,
 *   each pass checked against R as it stood after the previous pass;
 * - auth checks read only R (no fallback to the event's own auth events);
 * - if no event of an "other" key passes, the last of its ordering (lowest
 *   depth, highest sha1) is taken.
 */
import { createHash } from 'node:crypto';
import { checkAuth } from '../authRules.js';
import type { RoomVersion } from '../roomVersions.js';
import { parseStateMapKey, type Pdu } from '../../types/pdu.js';
import {
  authStateFor,
  isState,
  keyOf,
  POWER_LEVELS_KEY,
  toLookup,
  type EventLookup,
  type StateIdMap,
  type StateResolutionOptions,
} from './common.js';

type Lookup = (id: string) => Pdu | undefined;

/** v1 separation: keys held by every set with the same event, or by only one set's event, are unconflicted. */
export function separateV1(stateSets: readonly StateIdMap[]): {
  unconflicted: Map<string, string>;
  conflicted: Map<string, Set<string>>;
} {
  const unconflicted = new Map<string, string>();
  const conflicted = new Map<string, Set<string>>();
  const byKey = new Map<string, Set<string>>();
  for (const s of stateSets) {
    for (const [k, id] of s) {
      let ids = byKey.get(k);
      if (!ids) byKey.set(k, (ids = new Set()));
      ids.add(id);
    }
  }
  for (const [k, ids] of byKey) {
    if (ids.size === 1) unconflicted.set(k, ids.values().next().value!);
    else conflicted.set(k, ids);
  }
  return { unconflicted, conflicted };
}

function sha1Hex(id: string): string {
  return createHash('sha1').update(id, 'utf8').digest('hex');
}

function depthOf(ev: Pdu): number {
  return typeof ev.depth === 'number' && Number.isFinite(ev.depth) ? ev.depth : 0;
}

interface Entry {
  id: string;
  ev: Pdu & { state_key: string };
  depth: number;
  sha1: string;
}

/** Highest depth first, then smallest sha1(event_id). */
export function orderV1(ids: Iterable<string>, lookup: Lookup): Entry[] {
  const out: Entry[] = [];
  for (const id of ids) {
    const ev = lookup(id);
    if (ev && isState(ev)) out.push({ id, ev, depth: depthOf(ev), sha1: sha1Hex(id) });
  }
  return out.sort((a, b) => (a.depth !== b.depth ? b.depth - a.depth : a.sha1 < b.sha1 ? -1 : a.sha1 > b.sha1 ? 1 : 0));
}

function allowedIn(ev: Pdu, state: StateIdMap, lookup: Lookup, version: RoomVersion, opts: StateResolutionOptions): boolean {
  return checkAuth(ev, authStateFor(ev, state, lookup, version, undefined), version, opts.checkAuthOptions).allowed;
}

/**
 * Conflicting auth events (power levels, join rules, members): in ascending
 * depth / descending sha1 order, start from the first and keep replacing it
 * with the next one while that one is allowed on top of it; stop at the first
 * that is not.
 */
function resolveAuthEvents(ids: Set<string>, r: StateIdMap, lookup: Lookup, version: RoomVersion, opts: StateResolutionOptions): string | undefined {
  const ordered = orderV1(ids, lookup).reverse();
  if (ordered.length === 0) return undefined;
  const state = new Map(r);
  let prev = ordered[0]!;
  for (const next of ordered.slice(1)) {
    state.set(keyOf(prev.ev), prev.id);
    if (!allowedIn(next.ev, state, lookup, version, opts)) return prev.id;
    prev = next;
  }
  return prev.id;
}

/** Other conflicts: the first event, by descending depth / ascending sha1, allowed in R. */
function resolveNormalEvents(ids: Set<string>, r: StateIdMap, lookup: Lookup, version: RoomVersion, opts: StateResolutionOptions): string | undefined {
  const ordered = orderV1(ids, lookup);
  for (const e of ordered) if (allowedIn(e.ev, r, lookup, version, opts)) return e.id;
  return ordered.at(-1)?.id;
}

/**
 * Resolve `stateSets` with the room version 1 algorithm. `events` must hold
 * every event of the state sets (and the auth events the conflicted ones need
 * from R). Returns the resolved state by id.
 */
export function resolveStateV1(
  stateSets: readonly StateIdMap[],
  events: EventLookup,
  version: RoomVersion,
  opts: StateResolutionOptions = {},
): Map<string, string> {
  const lookup = toLookup(events);
  const { unconflicted, conflicted } = separateV1(stateSets);
  if (conflicted.size === 0) return unconflicted;
  const r = new Map(unconflicted);
  const resolved = new Map<string, string>();
  const pass = (pick: (key: string) => boolean, resolve: typeof resolveAuthEvents) => {
    const snapshot = new Map(r);
    for (const [key, ids] of conflicted) {
      if (resolved.has(key) || !pick(key)) continue;
      const id = resolve(ids, snapshot, lookup, version, opts);
      if (id !== undefined) resolved.set(key, id);
    }
    for (const [k, id] of resolved) r.set(k, id);
  };
  const typeIs = (t: string) => (key: string) => parseStateMapKey(key)[0] === t;
  pass((key) => key === POWER_LEVELS_KEY, resolveAuthEvents);
  pass(typeIs('m.room.join_rules'), resolveAuthEvents);
  pass(typeIs('m.room.member'), resolveAuthEvents);
  pass(() => true, resolveNormalEvents);
  return r;
}
