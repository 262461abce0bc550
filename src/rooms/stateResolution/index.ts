/**
 * State resolution for every room version: `resolveState` picks the
 * algorithm from `version.stateResolution`.
 *
 * Usage from a service (the only part that does I/O is the caller's fetcher):
 *
 *   const events = await loadStateResolutionEvents(stateSets, (ids) => repo.getEvents(db, ids), version);
 *   const resolved = resolveState(stateSets, events, version, { isRejected: (id) => rejected.has(id) });
 */
import { impliedAuthEventIds } from '../eventFormat.js';
import type { RoomVersion } from '../roomVersions.js';
import type { Pdu, StateMap } from '../../types/pdu.js';
import { toLookup, type EventLookup, type StateIdMap, type StateResolutionOptions } from './common.js';
import { resolveStateV1 } from './v1.js';
import { resolveStateV2 } from './v2.js';

export {
  authChainClosure,
  authChainDifference,
  authStateFor,
  iterativeAuthChecks,
  type EventLookup,
  type StateIdMap,
  type StateResolutionOptions,
} from './common.js';
export { orderV1, resolveStateV1, separateV1 } from './v1.js';
export {
  conflictedStateSubgraph,
  isPowerEvent,
  lexicographicalTopologicalSort,
  mainlineOrder,
  resolveStateV2,
  reverseTopologicalPowerOrder,
  senderPowerFromAuthEvents,
  separateV2,
} from './v2.js';

/** Resolve `stateSets` with the algorithm of `version` (v1, v2 or v2.1). */
export function resolveState(
  stateSets: readonly StateIdMap[],
  events: EventLookup,
  version: RoomVersion,
  opts: StateResolutionOptions = {},
): Map<string, string> {
  return version.stateResolution === 'v1'
    ? resolveStateV1(stateSets, events, version, opts)
    : resolveStateV2(stateSets, events, version, opts);
}

/**
 * Gather every event state resolution may need — the events of the state
 * sets and their full auth chains (v12: and the create event implied by the
 * room id) — through `fetch`, which is called breadth-first with batches of
 * ids not fetched yet and returns those it knows. Unknown ids are left out.
 */
export async function loadStateResolutionEvents(
  stateSets: readonly StateIdMap[],
  fetch: (eventIds: string[]) => Promise<ReadonlyMap<string, Pdu>> | ReadonlyMap<string, Pdu>,
  version: RoomVersion,
  known: ReadonlyMap<string, Pdu> = new Map(),
): Promise<Map<string, Pdu>> {
  const out = new Map(known);
  const asked = new Set<string>(known.keys());
  let frontier = new Set<string>();
  for (const s of stateSets) for (const id of s.values()) if (!asked.has(id)) frontier.add(id);
  for (const ev of known.values()) for (const a of impliedAuthEventIds(ev, version)) if (!asked.has(a)) frontier.add(a);
  while (frontier.size > 0) {
    const batch = [...frontier];
    for (const id of batch) asked.add(id);
    const got = await fetch(batch);
    const next = new Set<string>();
    for (const id of batch) {
      const ev = got.get(id);
      if (!ev) continue;
      out.set(id, ev);
      for (const a of impliedAuthEventIds(ev, version)) if (!asked.has(a)) next.add(a);
    }
    frontier = next;
  }
  return out;
}

/** The events of a resolved state, keyed like it (`StateMap`). Unknown ids are left out. */
export function stateMapOf(state: StateIdMap, events: EventLookup): StateMap {
  const lookup = toLookup(events);
  const out: StateMap = new Map();
  for (const [k, id] of state) {
    const ev = lookup(id);
    if (ev) out.set(k, ev);
  }
  return out;
}
