/**
 * State resolution v2 (room versions 2–11) and v2.1 (room version 12,
 * MSC4297), spec "Room Version 2: State resolution" / "Room Version 12: State
 * resolution".
 *
 * v2.1 differs in two places, both read from `version.stateResolution`:
 * - the full conflicted set also holds the conflicted state subgraph (every
 *   event on an auth-event path between two conflicted events);
 * - the first iterative auth checks start from the empty state instead of the
 *   unconflicted state map (which is still laid over the result at the end).
 */
import { userPowerLevel } from '../authRules.js';
import { impliedAuthEventIds } from '../eventFormat.js';
import type { RoomVersion } from '../roomVersions.js';
import type { Pdu, StateMap } from '../../types/pdu.js';
import {
  authChainClosure,
  authChainDifference,
  compareIds,
  iterativeAuthChecks,
  isState,
  keyOf,
  POWER_LEVELS_KEY,
  toLookup,
  tsOf,
  type EventLookup,
  type StateIdMap,
  type StateResolutionOptions,
} from './common.js';
import { MinHeap } from './heap.js';

type Lookup = (id: string) => Pdu | undefined;

/**
 * Unconflicted state map and conflicted state set (v2 definition): a key is
 * unconflicted when every state set maps it to the same event; otherwise each
 * distinct event for it is conflicted — also when some sets lack the key.
 */
export function separateV2(stateSets: readonly StateIdMap[]): {
  unconflicted: Map<string, string>;
  conflicted: Map<string, Set<string>>;
} {
  const unconflicted = new Map<string, string>();
  const conflicted = new Map<string, Set<string>>();
  const keys = new Set<string>();
  for (const s of stateSets) for (const k of s.keys()) keys.add(k);
  for (const key of keys) {
    const ids = new Set<string>();
    let missing = false;
    for (const s of stateSets) {
      const id = s.get(key);
      if (id === undefined) missing = true;
      else ids.add(id);
    }
    if (!missing && ids.size === 1) unconflicted.set(key, ids.values().next().value!);
    else conflicted.set(key, ids);
  }
  return { unconflicted, conflicted };
}

/**
 * Power events: `m.room.power_levels` and `m.room.join_rules` (state key ""),
 * and kicks/bans (`m.room.member` with `leave`/`ban` sent by someone other
 * than the target). The create event is counted too, as Synapse and ruma do;
 * it is in every auth chain, so it only reaches the conflicted set in rooms
 * with competing create events, where this keeps the implementations agreeing.
 */
export function isPowerEvent(ev: Pdu): boolean {
  if (!isState(ev)) return false;
  if (ev.type === 'm.room.power_levels' || ev.type === 'm.room.join_rules' || ev.type === 'm.room.create') {
    return ev.state_key === '';
  }
  if (ev.type === 'm.room.member') {
    const m = ev.content?.membership;
    return (m === 'leave' || m === 'ban') && ev.sender !== ev.state_key;
  }
  return false;
}

/**
 * v2.1 conflicted state subgraph: the events on some auth-event path between
 * two conflicted events, endpoints included. Those are the events reachable
 * from a conflicted event that themselves reach a conflicted event.
 */
export function conflictedStateSubgraph(conflicted: ReadonlySet<string>, lookup: Lookup, version: RoomVersion): Set<string> {
  const below = authChainClosure(conflicted, lookup, version);
  // Reverse edges inside `below`: auth event -> events citing it.
  const citedBy = new Map<string, string[]>();
  for (const id of below) {
    const ev = lookup(id);
    if (!ev) continue;
    for (const a of impliedAuthEventIds(ev, version)) {
      if (!below.has(a)) continue;
      let list = citedBy.get(a);
      if (!list) citedBy.set(a, (list = []));
      list.push(id);
    }
  }
  // Walk up from every conflicted event: whatever cites (transitively) a conflicted event reaches it.
  const out = new Set<string>();
  const stack = [...conflicted].filter((id) => below.has(id));
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (out.has(id)) continue;
    out.add(id);
    for (const up of citedBy.get(id) ?? []) if (!out.has(up)) stack.push(up);
  }
  return out;
}

/**
 * The power level of an event's sender according to its own auth events
 * (power levels and create event; v12: creators are infinite).
 */
export function senderPowerFromAuthEvents(ev: Pdu, lookup: Lookup, version: RoomVersion): number {
  const state: StateMap = new Map();
  for (const id of impliedAuthEventIds(ev, version)) {
    const a = lookup(id);
    if (!a || a.state_key !== '') continue;
    if (a.type === 'm.room.power_levels' || a.type === 'm.room.create') state.set(keyOf(a as Pdu & { state_key: string }), a);
  }
  return userPowerLevel(state, ev.sender, version);
}

/**
 * Kahn's algorithm on a DAG given as node -> the nodes it points at (its auth
 * events), emitting a node once everything it points at has been emitted,
 * and choosing the smallest candidate under `cmp` at each step. Nodes that
 * appear only as targets are ignored.
 */
export function lexicographicalTopologicalSort(
  graph: ReadonlyMap<string, ReadonlySet<string>>,
  cmp: (a: string, b: string) => number,
): string[] {
  const outdegree = new Map<string, number>();
  const reverse = new Map<string, string[]>();
  const heap = new MinHeap<string>(cmp);
  for (const [node, edges] of graph) {
    let n = 0;
    for (const e of edges) {
      if (!graph.has(e) || e === node) continue;
      n++;
      let list = reverse.get(e);
      if (!list) reverse.set(e, (list = []));
      list.push(node);
    }
    outdegree.set(node, n);
    if (n === 0) heap.push(node);
  }
  const out: string[] = [];
  for (let node = heap.pop(); node !== undefined; node = heap.pop()) {
    out.push(node);
    for (const parent of reverse.get(node) ?? []) {
      const n = outdegree.get(parent)! - 1;
      outdegree.set(parent, n);
      if (n === 0) heap.push(parent);
    }
  }
  return out; // nodes on a cycle (impossible for auth events) are left out
}

/**
 * Reverse topological power ordering of `eventIds` plus the events of their
 * auth chains that are in `fullConflicted`, over the DAG of their auth events
 * (edges followed inside `fullConflicted`, as the other implementations do).
 * Ties: higher sender power level first, then smaller `origin_server_ts`,
 * then smaller event id.
 */
export function reverseTopologicalPowerOrder(
  eventIds: Iterable<string>,
  fullConflicted: ReadonlySet<string>,
  lookup: Lookup,
  version: RoomVersion,
): string[] {
  const graph = new Map<string, Set<string>>();
  const stack = [...eventIds];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (graph.has(id)) continue;
    const edges = new Set<string>();
    graph.set(id, edges);
    const ev = lookup(id);
    if (!ev) continue;
    for (const a of impliedAuthEventIds(ev, version)) {
      if (!fullConflicted.has(a)) continue;
      edges.add(a);
      if (!graph.has(a)) stack.push(a);
    }
  }
  const power = new Map<string, number>();
  for (const id of graph.keys()) {
    const ev = lookup(id);
    power.set(id, ev ? senderPowerFromAuthEvents(ev, lookup, version) : 0);
  }
  return lexicographicalTopologicalSort(graph, (x, y) => {
    const px = power.get(x)!;
    const py = power.get(y)!;
    if (px !== py) return px > py ? -1 : 1;
    const tx = tsOf(lookup(x));
    const ty = tsOf(lookup(y));
    if (tx !== ty) return tx - ty;
    return compareIds(x, y);
  });
}

/** The id of the `m.room.power_levels` event among an event's auth events, if any. */
function powerLevelsAuthEvent(ev: Pdu | undefined, lookup: Lookup, version: RoomVersion): string | undefined {
  if (!ev) return undefined;
  for (const id of impliedAuthEventIds(ev, version)) {
    const a = lookup(id);
    if (a && a.type === 'm.room.power_levels' && a.state_key === '') return id;
  }
  return undefined;
}

/**
 * Mainline ordering of `eventIds` based on the power levels event
 * `powerLevelsId` (none: every position is ∞). An event's mainline position is
 * the index in the mainline of P of the first power levels event met walking
 * from it through power-levels auth events (the event itself excluded).
 * Order: greater position first, then smaller `origin_server_ts`, then
 * smaller event id.
 */
export function mainlineOrder(
  eventIds: readonly string[],
  powerLevelsId: string | undefined,
  lookup: Lookup,
  version: RoomVersion,
): string[] {
  const mainline = new Map<string, number>();
  for (let p = powerLevelsId, i = 0; p !== undefined && !mainline.has(p); i++) {
    mainline.set(p, i);
    p = powerLevelsAuthEvent(lookup(p), lookup, version);
  }
  // Positions of power-levels events already walked (off-mainline ones included).
  const known = new Map<string, number>();
  const positionOf = (id: string): number => {
    const path: string[] = [];
    let pos = Number.POSITIVE_INFINITY;
    for (let cur = powerLevelsAuthEvent(lookup(id), lookup, version); cur !== undefined; ) {
      const m = mainline.get(cur) ?? known.get(cur);
      if (m !== undefined) {
        pos = m;
        break;
      }
      if (path.includes(cur)) break; // cycle guard
      path.push(cur);
      cur = powerLevelsAuthEvent(lookup(cur), lookup, version);
    }
    for (const p of path) known.set(p, pos);
    return pos;
  };
  const keyed = eventIds.map((id) => ({ id, pos: positionOf(id), ts: tsOf(lookup(id)) }));
  keyed.sort((x, y) => {
    if (x.pos !== y.pos) return x.pos > y.pos ? -1 : 1;
    if (x.ts !== y.ts) return x.ts - y.ts;
    return compareIds(x.id, y.id);
  });
  return keyed.map((k) => k.id);
}

/**
 * Resolve `stateSets` with state resolution v2 (or v2.1 when
 * `version.stateResolution === 'v2.1'`). `events` must hold every event of the
 * state sets and of their auth chains. Returns the resolved state by id.
 */
export function resolveStateV2(
  stateSets: readonly StateIdMap[],
  events: EventLookup,
  version: RoomVersion,
  opts: StateResolutionOptions = {},
): Map<string, string> {
  if (stateSets.length === 0) return new Map();
  const lookup = toLookup(events);
  const { unconflicted, conflicted } = separateV2(stateSets);
  if (conflicted.size === 0) return unconflicted;

  // Full conflicted set: conflicted state set ∪ auth difference (∪ conflicted subgraph in v2.1).
  const conflictedIds = new Set<string>();
  for (const ids of conflicted.values()) for (const id of ids) conflictedIds.add(id);
  const full = new Set<string>(conflictedIds);
  for (const id of opts.authChainDifference?.(stateSets) ?? authChainDifference(stateSets, lookup, version)) full.add(id);
  const v21 = version.stateResolution === 'v2.1';
  if (v21) for (const id of conflictedStateSubgraph(conflictedIds, lookup, version)) full.add(id);
  for (const id of full) {
    const ev = lookup(id);
    if (!ev || !isState(ev)) full.delete(id);
  }

  // 1–2. Power events and their conflicted auth ancestors, by reverse topological power ordering.
  const powerEvents = [...full].filter((id) => isPowerEvent(lookup(id)!));
  const sortedPower = reverseTopologicalPowerOrder(powerEvents, full, lookup, version);
  const base: StateIdMap = v21 ? new Map() : unconflicted;
  const partial = iterativeAuthChecks(sortedPower, base, lookup, version, opts);

  // 3–4. Everything else, by mainline ordering on the partially resolved power levels.
  const picked = new Set(sortedPower);
  const leftover = [...full].filter((id) => !picked.has(id));
  const sortedLeftover = mainlineOrder(leftover, partial.get(POWER_LEVELS_KEY), lookup, version);
  const resolved = iterativeAuthChecks(sortedLeftover, partial, lookup, version, opts);

  // 5. The unconflicted state map always wins.
  for (const [k, id] of unconflicted) resolved.set(k, id);
  return resolved;
}
