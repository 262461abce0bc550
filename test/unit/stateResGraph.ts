/**
 * Test helpers for state resolution: build event DAGs from named events and
 * `prev_events` chains, computing the state after every event the way a
 * server does (resolving at merges), with auth events selected from the state
 * before each event. Event ids are real for the version: `$NAME:example.com`
 * for the v1 format, reference hashes from v3 on (v12 room id = create hash).
 */
import { authTypesForEvent } from '../../src/rooms/authRules.js';
import { eventIdOf, roomIdFromCreateEventId } from '../../src/rooms/eventFormat.js';
import type { RoomVersion } from '../../src/rooms/roomVersions.js';
import { resolveState } from '../../src/rooms/stateResolution/index.js';
import { stateMapKey, type Pdu } from '../../src/types/pdu.js';

export const ALICE = '@alice:example.com';
export const BOB = '@bob:example.com';
export const CHARLIE = '@charlie:example.com';
export const EVELYN = '@evelyn:example.com';
export const ZARA = '@zara:example.com';

export interface EventSpec {
  name: string;
  sender: string;
  type: string;
  stateKey?: string;
  content?: Record<string, unknown>;
  /** Fixed origin_server_ts; default: a counter in build order. */
  ts?: number;
  /** Explicit auth events (names); default: selected from the state before the event. */
  auth?: string[];
  /** Explicit prev events (names), for `buildChain`. */
  prev?: string[];
}

export const ev = (name: string, sender: string, type: string, stateKey: string | undefined, content: Record<string, unknown> = {}, extra: Partial<EventSpec> = {}): EventSpec => ({
  name,
  sender,
  type,
  ...(stateKey !== undefined ? { stateKey } : {}),
  content,
  ...extra,
});
export const member = (name: string, sender: string, target: string, membership: string, extra: Partial<EventSpec> = {}) =>
  ev(name, sender, 'm.room.member', target, { membership }, extra);
export const pl = (name: string, sender: string, content: Record<string, unknown>, extra: Partial<EventSpec> = {}) =>
  ev(name, sender, 'm.room.power_levels', '', content, extra);
export const topic = (name: string, sender: string, extra: Partial<EventSpec> = {}) =>
  ev(name, sender, 'm.room.topic', '', { topic: name }, extra);

export class Graph {
  readonly ids = new Map<string, string>();
  readonly names = new Map<string, string>();
  readonly events = new Map<string, Pdu>();
  readonly stateAfter = new Map<string, Map<string, string>>();
  roomId = '!test:example.com';
  private ts = 0;

  constructor(readonly version: RoomVersion) {}

  id(name: string): string {
    const id = this.ids.get(name);
    if (id === undefined) throw new Error(`no event ${name}`);
    return id;
  }

  pdu(name: string): Pdu {
    return this.events.get(this.id(name))!;
  }

  /** `{ key -> id }` for the named events. */
  state(...names: string[]): Map<string, string> {
    const out = new Map<string, string>();
    for (const n of names) {
      const p = this.pdu(n);
      out.set(stateMapKey(p.type, p.state_key!), this.id(n));
    }
    return out;
  }

  /** Readable form of a state: `{ "type|state_key": name }`. */
  named(state: ReadonlyMap<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, id] of [...state].sort(([a], [b]) => (a < b ? -1 : 1))) out[k.replace('\u0000', '|')] = this.names.get(id) ?? id;
    return out;
  }

  /** Add one event after `prevs`, with the given state before it. */
  add(spec: EventSpec, prevs: string[], stateBefore: ReadonlyMap<string, string>): string {
    const v = this.version;
    const content = spec.content ?? {};
    const authIds = spec.auth
      ? spec.auth.map((n) => this.id(n))
      : authTypesForEvent(spec.type, spec.stateKey, content, spec.sender, v)
          .map(([t, k]) => stateBefore.get(stateMapKey(t, k)))
          .filter((x): x is string => x !== undefined);
    const prevIds = prevs.map((n) => this.id(n));
    const refs = (ids: string[]) => (v.eventFormat === 'v1' ? ids.map((id) => [id, {}] as [string, Record<string, string>]) : ids);
    const depth = 1 + Math.max(0, ...prevIds.map((id) => this.events.get(id)!.depth));
    const pdu: Pdu = {
      auth_events: refs(authIds),
      prev_events: refs(prevIds),
      content,
      depth,
      hashes: { sha256: 'AAAA' },
      origin_server_ts: spec.ts ?? ++this.ts,
      room_id: this.roomId,
      sender: spec.sender,
      type: spec.type,
      signatures: {},
    };
    if (spec.stateKey !== undefined) pdu.state_key = spec.stateKey;
    if (v.eventFormat === 'v1') pdu.event_id = `$${spec.name}:example.com`;
    const createsRoom = v.roomIdFromCreateEvent && spec.type === 'm.room.create';
    if (createsRoom) delete (pdu as Partial<Pdu>).room_id;
    const id = eventIdOf(pdu, v);
    if (createsRoom) this.roomId = roomIdFromCreateEventId(id);
    this.ids.set(spec.name, id);
    this.names.set(id, spec.name);
    this.events.set(id, pdu);
    const after = new Map(stateBefore);
    if (spec.stateKey !== undefined) after.set(stateMapKey(spec.type, spec.stateKey), id);
    this.stateAfter.set(spec.name, after);
    return id;
  }

  /** Resolve (by the graph's version) the states after the named events. */
  resolveAfter(names: string[]): Map<string, string> {
    if (names.length === 0) return new Map();
    if (names.length === 1) return new Map(this.stateAfter.get(names[0]!)!);
    return resolveState(names.map((n) => this.stateAfter.get(n)!), this.events, this.version);
  }
}

/**
 * Build a DAG from `specs` and `chains` of prev edges (`[A, B, C]`: A's prev
 * is B, B's is C). Events are created in topological order, ties by name, so
 * the default timestamps are deterministic.
 */
export function buildDag(version: RoomVersion, specs: EventSpec[], chains: string[][]): Graph {
  const prevs = new Map<string, Set<string>>();
  const byName = new Map<string, EventSpec>();
  for (const s of specs) {
    prevs.set(s.name, new Set());
    byName.set(s.name, s);
  }
  for (const chain of chains) {
    for (let i = 0; i + 1 < chain.length; i++) prevs.get(chain[i]!)!.add(chain[i + 1]!);
  }
  const g = new Graph(version);
  const done = new Set<string>();
  while (done.size < specs.length) {
    const ready = [...prevs].filter(([n, ps]) => !done.has(n) && [...ps].every((p) => done.has(p))).map(([n]) => n);
    if (ready.length === 0) throw new Error('cycle in test graph');
    const name = ready.sort()[0]!;
    const ps = [...prevs.get(name)!];
    g.add(byName.get(name)!, ps, g.resolveAfter(ps));
    done.add(name);
  }
  return g;
}

/** Events in the given order, each after `spec.prev` (default: the previous one). */
export function buildChain(version: RoomVersion, specs: EventSpec[]): Graph {
  const g = new Graph(version);
  let last: string | undefined;
  for (const s of specs) {
    const ps = s.prev ?? (last ? [last] : []);
    g.add(s, ps, g.resolveAfter(ps));
    last = s.name;
  }
  return g;
}

/** The events every classic state-res graph starts with (Synapse/ruma test suites). */
export const INITIAL_EVENTS: EventSpec[] = [
  ev('CREATE', ALICE, 'm.room.create', '', { creator: ALICE }),
  member('IMA', ALICE, ALICE, 'join'),
  pl('IPOWER', ALICE, { users: { [ALICE]: 100 } }),
  ev('IJR', ALICE, 'm.room.join_rules', '', { join_rule: 'public' }),
  member('IMB', BOB, BOB, 'join'),
  member('IMC', CHARLIE, CHARLIE, 'join'),
  member('IMZ', ZARA, ZARA, 'join'),
  ev('START', ZARA, 'm.room.message', undefined, {}),
  ev('END', ZARA, 'm.room.message', undefined, {}),
];
export const INITIAL_CHAIN = ['START', 'IMZ', 'IMC', 'IMB', 'IJR', 'IPOWER', 'IMA', 'CREATE'];

/**
 * The state at END restricted to the keys that changed since START plus the
 * keys of `expected`, as names; and `expected` in the same form.
 */
export function endStateAgainst(g: Graph, expected: string[]): { got: Record<string, string>; want: Record<string, string> } {
  const want = g.state(...expected);
  const start = g.stateAfter.get('START')!;
  const end = g.stateAfter.get('END')!;
  const got = new Map([...end].filter(([k, id]) => want.has(k) || start.get(k) !== id));
  return { got: g.named(got), want: g.named(want) };
}
