/**
 * Shared pieces of the state resolution algorithms. Pure: events come from a
 * caller-supplied lookup, nothing is fetched here.
 *
 * States are maps `stateMapKey(type, state_key) -> event id`: ids are what the
 * algorithms compare and sort by, and deriving them from PDUs would mean
 * hashing every event (v3+ ids are reference hashes).
 */
import { checkAuth, authTypesForEvent, type CheckAuthOptions } from '../authRules.js';
import { impliedAuthEventIds } from '../eventFormat.js';
import type { RoomVersion } from '../roomVersions.js';
import { stateMapKey, type Pdu, type StateMap } from '../../types/pdu.js';

/** A room state by id: `stateMapKey(type, state_key) -> event id`. */
export type StateIdMap = ReadonlyMap<string, string>;

/**
 * Where the algorithms find events: a map holding every event they may need
 * (the events of the state sets and their full auth chains; for v12 also the
 * create event), or a synchronous lookup. `loadStateResolutionEvents` gathers
 * such a map through an async fetcher. Events that are absent are treated as
 * unknown: they are left out of the conflicted set and of auth chains.
 */
export type EventLookup = ReadonlyMap<string, Pdu> | ((eventId: string) => Pdu | undefined);

export interface StateResolutionOptions {
  /**
   * True for events rejected on receipt (failed auth against their own auth
   * events, or the state before them). The iterative auth checks never fall
   * back to a rejected auth event. Events of the state sets are resolved as
   * usual whatever this says (spec: "Rejected events").
   */
  isRejected?: (eventId: string) => boolean;
  /**
   * The auth chain difference of the state sets, when the caller can compute
   * it faster (e.g. from a chain-cover index in storage). Must include the
   * state events themselves in each state set's auth chain, as
   * `authChainDifference` does. Default: walk the chains through the lookup.
   */
  authChainDifference?: (stateSets: readonly StateIdMap[]) => ReadonlySet<string>;
  /** Passed to `checkAuth` (e.g. `isSignedBy` for restricted joins). */
  checkAuthOptions?: CheckAuthOptions;
}

export const CREATE_KEY = stateMapKey('m.room.create', '');
export const POWER_LEVELS_KEY = stateMapKey('m.room.power_levels', '');

export function toLookup(events: EventLookup): (eventId: string) => Pdu | undefined {
  if (typeof events === 'function') return events;
  return (id) => events.get(id);
}

export function isState(pdu: Pdu): pdu is Pdu & { state_key: string } {
  return typeof pdu.state_key === 'string';
}

export function keyOf(pdu: Pdu & { state_key: string }): string {
  return stateMapKey(pdu.type, pdu.state_key);
}

/**
 * All events reachable from `seeds` through auth events, the seeds included
 * (v12: the implied create event counts as an auth event). Unknown events are
 * included but not walked through.
 */
export function authChainClosure(
  seeds: Iterable<string>,
  lookup: (id: string) => Pdu | undefined,
  version: RoomVersion,
): Set<string> {
  const seen = new Set<string>();
  const stack = [...seeds];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const ev = lookup(id);
    if (!ev) continue;
    for (const a of impliedAuthEventIds(ev, version)) if (!seen.has(a)) stack.push(a);
  }
  return seen;
}

/**
 * Auth difference: ∪ Cᵢ − ∩ Cᵢ, where Cᵢ is the full auth chain of state set
 * i. Each Cᵢ includes the state events themselves (as Synapse, ruma and
 * Dendrite compute it; the spec's wording, "the union of the auth chains of
 * each event", can be read as excluding them).
 */
export function authChainDifference(
  stateSets: readonly StateIdMap[],
  lookup: (id: string) => Pdu | undefined,
  version: RoomVersion,
): Set<string> {
  const counts = new Map<string, number>();
  for (const set of stateSets) {
    for (const id of authChainClosure(set.values(), lookup, version)) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const out = new Set<string>();
  for (const [id, n] of counts) if (n < stateSets.length) out.add(id);
  return out;
}

/**
 * The event's auth events by `(type, state_key)`, skipping unknown, rejected
 * and non-state ones (v12: with the implied create event).
 */
export function authEventsByKey(
  event: Pdu,
  lookup: (id: string) => Pdu | undefined,
  version: RoomVersion,
  isRejected?: (eventId: string) => boolean,
): Map<string, Pdu> {
  const out = new Map<string, Pdu>();
  for (const id of impliedAuthEventIds(event, version)) {
    if (isRejected?.(id)) continue;
    const ev = lookup(id);
    if (ev && isState(ev)) out.set(keyOf(ev), ev);
  }
  return out;
}

/**
 * The auth state to check `event` against, read from `state`: every key the
 * auth rules need (`authTypesForEvent`, plus the create event in v12, where
 * it is implied rather than selected). With `fallback`, a key missing from
 * `state` is taken from the event's own (non-rejected) auth events — the
 * spec's iterative auth checks; state resolution v1 does without.
 */
export function authStateFor(
  event: Pdu,
  state: StateIdMap,
  lookup: (id: string) => Pdu | undefined,
  version: RoomVersion,
  fallback: Map<string, Pdu> | undefined,
): StateMap {
  const content = typeof event.content === 'object' && event.content !== null ? event.content : {};
  const keys = authTypesForEvent(event.type, event.state_key, content, event.sender, version).map(([t, k]) => stateMapKey(t, k));
  if (version.roomIdFromCreateEvent && event.type !== 'm.room.create') keys.push(CREATE_KEY);
  const out: StateMap = new Map();
  for (const key of keys) {
    const id = state.get(key);
    const ev = id !== undefined ? lookup(id) : fallback?.get(key);
    if (ev) out.set(key, ev);
  }
  return out;
}

/**
 * The spec's iterative auth checks: apply each event of `ordered` to a copy of
 * `base` when it passes the auth rules against that state (missing keys taken
 * from its own non-rejected auth events); ignore it otherwise.
 */
export function iterativeAuthChecks(
  ordered: readonly string[],
  base: StateIdMap,
  lookup: (id: string) => Pdu | undefined,
  version: RoomVersion,
  opts: StateResolutionOptions,
): Map<string, string> {
  const state = new Map(base);
  for (const id of ordered) {
    const ev = lookup(id);
    if (!ev || !isState(ev)) continue;
    const fallback = authEventsByKey(ev, lookup, version, opts.isRejected);
    const authState = authStateFor(ev, state, lookup, version, fallback);
    if (checkAuth(ev, authState, version, opts.checkAuthOptions).allowed) state.set(keyOf(ev), id);
  }
  return state;
}

/** Compare strings by UTF-16 code units (never `localeCompare`: the order must be the same everywhere). */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `origin_server_ts` as a number (0 when malformed), for tie-breaks. */
export function tsOf(ev: Pdu | undefined): number {
  const ts = ev?.origin_server_ts;
  return typeof ts === 'number' && Number.isFinite(ts) ? ts : 0;
}
