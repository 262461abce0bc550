import { describe, expect, it } from 'vitest';
import { getRoomVersion, ROOM_VERSIONS, type RoomVersion } from '../../src/rooms/roomVersions.js';
import {
  authChainDifference,
  conflictedStateSubgraph,
  isPowerEvent,
  lexicographicalTopologicalSort,
  loadStateResolutionEvents,
  mainlineOrder,
  resolveState,
  resolveStateV2,
  reverseTopologicalPowerOrder,
  separateV2,
  stateMapOf,
} from '../../src/rooms/stateResolution/index.js';
import { stateMapKey, type Pdu } from '../../src/types/pdu.js';
import {
  ALICE,
  BOB,
  buildChain,
  buildDag,
  CHARLIE,
  endStateAgainst,
  ev,
  EVELYN,
  INITIAL_CHAIN,
  INITIAL_EVENTS,
  member,
  pl,
  topic,
  ZARA,
  type EventSpec,
} from './stateResGraph.js';

const V2_VERSIONS = [...ROOM_VERSIONS.values()].filter((v) => v.stateResolution === 'v2');
const rv = (id: string): RoomVersion => getRoomVersion(id)!;

interface GraphCase {
  name: string;
  events: EventSpec[];
  chains: string[][];
  /** The state at END: these entries, plus nothing else changed since START. */
  expected: string[];
}

/**
 * The well-known v2 graphs (the same DAGs are in the Synapse, ruma, Conduit
 * and Dendrite suites), built here from scratch on top of INITIAL_EVENTS.
 */
const CASES: GraphCase[] = [
  {
    // Alice bans Bob while Bob concurrently re-sends the power levels: the ban wins.
    name: 'ban vs power levels',
    events: [
      pl('PA', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      member('MA', ALICE, ALICE, 'join'),
      member('MB', ALICE, BOB, 'ban'),
      pl('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
    ],
    chains: [
      ['END', 'MB', 'MA', 'PA', 'START'],
      ['END', 'PB', 'PA'],
    ],
    expected: ['PA', 'MA', 'MB'],
  },
  {
    // Evelyn joins concurrently with the room going invite-only: her join is dropped.
    name: 'join rule evasion',
    events: [
      ev('JR', ALICE, 'm.room.join_rules', '', { join_rules: 'private' }),
      member('ME', EVELYN, EVELYN, 'join'),
    ],
    chains: [
      ['END', 'JR', 'START'],
      ['END', 'ME', 'START'],
    ],
    expected: ['JR'],
  },
  {
    // A power levels change on a side branch doesn't undo the later ones.
    name: 'offtopic power levels',
    events: [
      pl('PA', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      pl('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50 } }),
      pl('PC', CHARLIE, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 0 } }),
    ],
    chains: [
      ['END', 'PC', 'PB', 'PA', 'START'],
      ['END', 'PA'],
    ],
    expected: ['PC'],
  },
  {
    // Bob is demoted (PA2) concurrently with his own PL event and topic: both of his lose.
    name: 'topic basic',
    events: [
      topic('T1', ALICE),
      pl('PA1', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T2', ALICE),
      pl('PA2', ALICE, { users: { [ALICE]: 100, [BOB]: 0 } }),
      pl('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T3', BOB),
    ],
    chains: [
      ['END', 'PA2', 'T2', 'PA1', 'T1', 'START'],
      ['END', 'T3', 'PB', 'PA1'],
    ],
    expected: ['PA2', 'T2'],
  },
  {
    // Merging with an old branch must not reset the topic to Bob's (banned) one.
    name: 'topic reset',
    events: [
      topic('T1', ALICE),
      pl('PA', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T2', BOB),
      member('MB', ALICE, BOB, 'ban'),
    ],
    chains: [
      ['END', 'MB', 'T2', 'PA', 'T1', 'START'],
      ['END', 'T1'],
    ],
    expected: ['T1', 'MB', 'PA'],
  },
  {
    name: 'topic setting',
    events: [
      topic('T1', ALICE),
      pl('PA1', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T2', ALICE),
      pl('PA2', ALICE, { users: { [ALICE]: 100, [BOB]: 0 } }),
      pl('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T3', BOB),
      ev('MZ1', ZARA, 'm.room.message', undefined, {}),
      topic('T4', ALICE),
    ],
    chains: [
      ['END', 'T4', 'MZ1', 'PA2', 'T2', 'PA1', 'T1', 'START'],
      ['END', 'MZ1', 'T3', 'PB', 'PA1'],
    ],
    expected: ['T4', 'PA2'],
  },
  {
    // T3 cites the newest power levels, so it sorts last and wins over the later T4.
    name: 'mainline sort',
    events: [
      topic('T1', ALICE),
      pl('PA1', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T2', ALICE),
      pl('PA2', ALICE, { users: { [ALICE]: 100, [BOB]: 50 }, events: { 'm.room.power_levels': 100 } }),
      pl('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50 } }),
      topic('T3', BOB),
      topic('T4', ALICE),
    ],
    chains: [
      ['END', 'T3', 'PA2', 'T2', 'PA1', 'T1', 'START'],
      ['END', 'T4', 'PB', 'PA1'],
    ],
    expected: ['T3', 'PA2'],
  },
  {
    // Two moderators (equal power) change Zara's level at once: the later one applies last and wins.
    name: 'power level race (equal power: origin_server_ts decides)',
    events: [
      pl('PA', ALICE, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50 } }),
      pl('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50, [ZARA]: 10 } }, { ts: 1000 }),
      pl('PC', CHARLIE, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50, [ZARA]: 20 } }, { ts: 2000 }),
    ],
    chains: [
      ['END', 'PB', 'PA', 'START'],
      ['END', 'PC', 'PA'],
    ],
    expected: ['PC'],
  },
  {
    // Alice (100) and Bob (50) at once; Alice's is later but sorts first by power, so Bob's applies last.
    name: 'power level race (higher sender power sorts first)',
    events: [
      pl('PA', ALICE, { users: { [ALICE]: 100, [BOB]: 50 } }),
      pl('PA2', ALICE, { users: { [ALICE]: 100, [BOB]: 50, [ZARA]: 5 } }, { ts: 2000 }),
      pl('PB', BOB, { users: { [ALICE]: 100, [BOB]: 50, [ZARA]: 10 } }, { ts: 1000 }),
    ],
    chains: [
      ['END', 'PA2', 'PA', 'START'],
      ['END', 'PB', 'PA'],
    ],
    expected: ['PB'],
  },
];

describe('state resolution v2: published example graphs', () => {
  for (const v of V2_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
        const g = buildDag(v, [...INITIAL_EVENTS, ...c.events], [INITIAL_CHAIN, ...c.chains]);
        const { got, want } = endStateAgainst(g, c.expected);
        expect(got).toEqual(want);
      });
    });
  }
});

describe('state resolution v2: event id tie-break', () => {
  it('equal power and timestamp: the smaller id (by code unit, not locale) sorts first and loses', () => {
    // '$PC:…' < '$Pb:…' by UTF-16 code units ('C' 0x43 < 'b' 0x62); localeCompare says the opposite.
    const v = rv('2'); // v1 event format: ids are the names
    const g = buildDag(
      v,
      [
        ...INITIAL_EVENTS,
        pl('PA', ALICE, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50 } }),
        pl('Pb', BOB, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50, [ZARA]: 10 } }, { ts: 5000 }),
        pl('PC', CHARLIE, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50, [ZARA]: 20 } }, { ts: 5000 }),
      ],
      [INITIAL_CHAIN, ['END', 'Pb', 'PA', 'START'], ['END', 'PC', 'PA']],
    );
    const { got, want } = endStateAgainst(g, ['Pb']);
    expect(got).toEqual(want);
    const order = reverseTopologicalPowerOrder([g.id('Pb'), g.id('PC')], new Set([g.id('Pb'), g.id('PC')]), (id) => g.events.get(id), v);
    expect(order.map((id) => g.names.get(id))).toEqual(['PC', 'Pb']);
  });
});

describe('lexicographical topological sort (Kahn)', () => {
  it('emits auth events first, ties by the comparator', () => {
    const graph = new Map<string, Set<string>>([
      ['l', new Set(['o'])],
      ['m', new Set(['n', 'o'])],
      ['n', new Set(['o'])],
      ['o', new Set()],
      ['p', new Set(['o'])],
    ]);
    const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    expect(lexicographicalTopologicalSort(graph, cmp)).toEqual(['o', 'l', 'n', 'm', 'p']);
    expect(lexicographicalTopologicalSort(graph, (a, b) => cmp(b, a))).toEqual(['o', 'p', 'n', 'm', 'l']);
  });
});

describe('reverse topological power ordering', () => {
  // Three PL events all citing the same PL, so only the tie-breaks order them.
  const v = rv('10');
  const g = buildChain(v, [
    ev('CREATE', ALICE, 'm.room.create', '', {}),
    member('IMA', ALICE, ALICE, 'join'),
    pl('P0', ALICE, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50 } }),
    member('IMB', BOB, BOB, 'join', { auth: ['CREATE', 'P0'] }),
    member('IMC', CHARLIE, CHARLIE, 'join', { auth: ['CREATE', 'P0'] }),
    pl('XA', ALICE, { users: {} }, { ts: 300, auth: ['CREATE', 'P0', 'IMA'] }),
    pl('XB', BOB, { users: { [ALICE]: 100, [BOB]: 50, [CHARLIE]: 50 } }, { ts: 100, auth: ['CREATE', 'P0', 'IMB'] }),
    pl('XC', CHARLIE, { users: {} }, { ts: 200, auth: ['CREATE', 'P0', 'IMC'] }),
    // XD (Alice: 100 by XB, earliest ts) cites XB: it must still come after XB.
    pl('XD', ALICE, { users: {} }, { ts: 1, auth: ['CREATE', 'XB', 'IMA'] }),
  ]);
  const names = (ids: string[]) => ids.map((id) => g.names.get(id));
  const lookup = (id: string) => g.events.get(id);

  it('power first, then origin_server_ts, respecting auth edges', () => {
    const ids = ['XA', 'XB', 'XC', 'XD'].map((n) => g.id(n));
    expect(names(reverseTopologicalPowerOrder(ids, new Set(ids), lookup, v))).toEqual(['XA', 'XB', 'XD', 'XC']);
  });

  it('pulls in auth ancestors that are in the full conflicted set only', () => {
    const full = new Set(['XD', 'XB', 'IMB'].map((n) => g.id(n)));
    expect(names(reverseTopologicalPowerOrder([g.id('XD')], full, lookup, v))).toEqual(['IMB', 'XB', 'XD']);
  });

  it('isPowerEvent', () => {
    expect(isPowerEvent(g.pdu('XA'))).toBe(true);
    expect(isPowerEvent(g.pdu('IMB'))).toBe(false);
    const kick = { ...g.pdu('IMB'), sender: ALICE, content: { membership: 'leave' } } as Pdu;
    const leave = { ...g.pdu('IMB'), content: { membership: 'leave' } } as Pdu;
    const ban = { ...g.pdu('IMB'), sender: ALICE, content: { membership: 'ban' } } as Pdu;
    expect([isPowerEvent(kick), isPowerEvent(leave), isPowerEvent(ban)]).toEqual([true, false, true]);
    const jr = { ...g.pdu('XA'), type: 'm.room.join_rules' } as Pdu;
    const topicEv = { ...g.pdu('XA'), type: 'm.room.topic' } as Pdu;
    expect([isPowerEvent(jr), isPowerEvent(topicEv)]).toEqual([true, false]);
  });
});

describe('mainline ordering', () => {
  const v = rv('10');
  const g = buildChain(v, [
    ev('CREATE', ALICE, 'm.room.create', '', {}),
    member('IMA', ALICE, ALICE, 'join'),
    pl('P1', ALICE, { users: { [ALICE]: 100 } }),
    pl('P2', ALICE, { users: { [ALICE]: 100 } }),
    pl('P3', ALICE, { users: { [ALICE]: 100 } }),
    pl('POFF', ALICE, { users: { [ALICE]: 100 } }, { auth: ['CREATE', 'IMA', 'P2'] }), // off the mainline, on P2
    topic('NOPL', ALICE, { ts: 50, auth: ['CREATE', 'IMA'] }), // no PL: position ∞
    topic('ON1', ALICE, { ts: 10, auth: ['CREATE', 'IMA', 'P1'] }),
    topic('ON3', ALICE, { ts: 5, auth: ['CREATE', 'IMA', 'P3'] }),
    topic('OFF', ALICE, { ts: 40, auth: ['CREATE', 'IMA', 'POFF'] }), // position of P2
    topic('ON2a', ALICE, { ts: 30, auth: ['CREATE', 'IMA', 'P2'] }),
    topic('ON2b', ALICE, { ts: 30, auth: ['CREATE', 'IMA', 'P2'] }),
  ]);
  const names = (ids: string[]) => ids.map((id) => g.names.get(id));
  const lookup = (id: string) => g.events.get(id);
  const all = ['ON3', 'ON2b', 'OFF', 'ON1', 'NOPL', 'ON2a'];

  it('older mainline position first, then origin_server_ts, then event id', () => {
    const [a, b] = [g.id('ON2a'), g.id('ON2b')].sort();
    const sorted = names(mainlineOrder(all.map((n) => g.id(n)), g.id('P3'), lookup, v));
    expect(sorted).toEqual(['NOPL', 'ON1', g.names.get(a!), g.names.get(b!), 'OFF', 'ON3']);
  });

  it('without a resolved power levels event every position is ∞', () => {
    const sorted = names(mainlineOrder(all.map((n) => g.id(n)), undefined, lookup, v));
    expect(sorted.slice(0, 2)).toEqual(['ON3', 'ON1']);
    expect(sorted.at(-1)).toBe('NOPL');
  });
});

describe('building blocks', () => {
  const v = rv('10');
  const g = buildChain(v, [
    ev('CREATE', ALICE, 'm.room.create', '', {}),
    member('IMA', ALICE, ALICE, 'join'),
    pl('P1', ALICE, { users: { [ALICE]: 100 } }),
    ev('JR', ALICE, 'm.room.join_rules', '', { join_rule: 'public' }),
    member('IMB', BOB, BOB, 'join'),
    topic('TA', ALICE, { prev: ['IMB'] }),
    topic('TB', BOB, { prev: ['IMB'] }),
    member('IMC', CHARLIE, CHARLIE, 'join', { prev: ['TB'] }),
  ]);
  const lookup = (id: string) => g.events.get(id);

  it('separateV2: a key missing from one set is conflicted', () => {
    const s1 = g.state('CREATE', 'IMA', 'TA');
    const s2 = g.state('CREATE', 'IMA', 'TB', 'IMC');
    const { unconflicted, conflicted } = separateV2([s1, s2]);
    expect(g.named(unconflicted)).toEqual({ 'm.room.create|': 'CREATE', [`m.room.member|${ALICE}`]: 'IMA' });
    expect([...conflicted.keys()].sort()).toEqual([stateMapKey('m.room.member', CHARLIE), stateMapKey('m.room.topic', '')].sort());
    expect(conflicted.get(stateMapKey('m.room.member', CHARLIE))).toEqual(new Set([g.id('IMC')]));
  });

  it('auth chain difference includes the state events themselves', () => {
    const s1 = g.stateAfter.get('TA')!;
    const s2 = g.stateAfter.get('IMC')!;
    const diff = authChainDifference([s1, s2], lookup, v);
    expect([...diff].map((id) => g.names.get(id)).sort()).toEqual(['IMC', 'TA', 'TB']);
  });

  it('conflicted state subgraph holds the paths between conflicted events', () => {
    // IMB cites JR, which cites P1: that path joins the conflicted IMB and P1 (IMA, below P1, is off it).
    const sub = conflictedStateSubgraph(new Set([g.id('IMB'), g.id('P1')]), lookup, v);
    expect([...sub].map((id) => g.names.get(id)).sort()).toEqual(['IMB', 'JR', 'P1']);
    const lone = conflictedStateSubgraph(new Set([g.id('TA'), g.id('TB')]), lookup, v);
    expect([...lone].map((id) => g.names.get(id)).sort()).toEqual(['TA', 'TB']);
  });

  it('no conflicts: the unconflicted map, untouched', () => {
    const s = g.stateAfter.get('IMC')!;
    expect(resolveStateV2([s, s], g.events, v)).toEqual(s);
    expect(resolveStateV2([], g.events, v)).toEqual(new Map());
  });

  it('missing events are left out, not fatal', () => {
    const s1 = new Map(g.stateAfter.get('TA')!);
    const s2 = new Map(g.stateAfter.get('TB')!);
    s2.set(stateMapKey('m.room.name', ''), '$unknown');
    const out = resolveStateV2([s1, s2], g.events, v);
    expect(out.has(stateMapKey('m.room.name', ''))).toBe(false);
    expect(out.get(stateMapKey('m.room.topic', ''))).toBeDefined();
  });

  it('an auth event the caller marks rejected is not used as a fallback', () => {
    // Neither state holds the join rules, which are in both auth chains (so not conflicted):
    // Charlie's join can only be authorised through its own auth event JR.
    const withoutJr = (name: string) => new Map([...g.stateAfter.get(name)!].filter(([k]) => k !== stateMapKey('m.room.join_rules', '')));
    const s1 = withoutJr('TB');
    const s2 = withoutJr('IMC');
    const charlieKey = stateMapKey('m.room.member', CHARLIE);
    expect(resolveStateV2([s1, s2], g.events, v).get(charlieKey)).toBe(g.id('IMC'));
    const rejected = resolveStateV2([s1, s2], g.events, v, { isRejected: (id) => id === g.id('JR') });
    expect(rejected.has(charlieKey)).toBe(false);
  });

  it('loadStateResolutionEvents walks auth chains through the fetcher, in batches', async () => {
    const calls: string[][] = [];
    const got = await loadStateResolutionEvents(
      [g.stateAfter.get('TA')!],
      async (ids) => {
        calls.push(ids);
        return new Map(ids.flatMap((id) => (g.events.has(id) ? [[id, g.events.get(id)!] as const] : [])));
      },
      v,
    );
    const names = [...got.keys()].map((id) => g.names.get(id)).sort();
    expect(names).toEqual(['CREATE', 'IMA', 'IMB', 'JR', 'P1', 'TA']);
    expect(calls.length).toBeLessThanOrEqual(3);
    expect(new Set(calls.flat()).size).toBe(calls.flat().length); // nothing asked twice
    expect([...stateMapOf(g.stateAfter.get('TA')!, got).values()].map((p) => p.type)).toContain('m.room.topic');
    expect(resolveState([g.stateAfter.get('TA')!, g.stateAfter.get('TB')!], got, v).size).toBeGreaterThan(0);
  });
});
