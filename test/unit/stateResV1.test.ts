import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { getRoomVersion, type RoomVersion } from '../../src/rooms/roomVersions.js';
import { orderV1, resolveState, resolveStateV1, separateV1 } from '../../src/rooms/stateResolution/index.js';
import { stateMapKey } from '../../src/types/pdu.js';
import {
  ALICE,
  BOB,
  buildDag,
  endStateAgainst,
  ev,
  INITIAL_CHAIN,
  INITIAL_EVENTS,
  member,
  pl,
  topic,
  ZARA,
  type EventSpec,
} from './stateResGraph.js';

const v1: RoomVersion = getRoomVersion('1')!;
const msg = (name: string) => ev(name, ZARA, 'm.room.message', undefined, {});
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

function endState(events: EventSpec[], chains: string[][], expected: string[]) {
  const g = buildDag(v1, [...INITIAL_EVENTS, ...events], [INITIAL_CHAIN, ...chains]);
  return endStateAgainst(g, expected);
}

describe('state resolution v1 (room version 1)', () => {
  it('other events: the deepest one that passes auth wins', () => {
    const { got, want } = endState(
      [topic('T1', ALICE), topic('T2', ALICE), msg('M1')],
      [
        ['END', 'T1', 'M1', 'START'],
        ['END', 'T2', 'START'],
      ],
      ['T1'],
    );
    expect(got).toEqual(want);
  });

  it('other events: same depth, the smallest sha1(event_id) wins', () => {
    // sha1('$T3:example.com') = 5536… < sha1('$T1:example.com') = 5d9d…, the reverse of the id order.
    expect(sha1('$T3:example.com') < sha1('$T1:example.com')).toBe(true);
    const { got, want } = endState(
      [topic('T1', ALICE), topic('T3', ALICE)],
      [
        ['END', 'T1', 'START'],
        ['END', 'T3', 'START'],
      ],
      ['T3'],
    );
    expect(got).toEqual(want);
  });

  it('other events: skips events that fail auth in R; if all fail, the shallowest', () => {
    const passing = endState(
      [topic('T1', BOB), topic('T2', ALICE), msg('M1')],
      [
        ['END', 'T1', 'M1', 'START'],
        ['END', 'T2', 'START'],
      ],
      ['T2'],
    );
    expect(passing.got).toEqual(passing.want);
    const failing = endState(
      [topic('T1', BOB), topic('T2', BOB), msg('M1')],
      [
        ['END', 'T1', 'M1', 'START'],
        ['END', 'T2', 'START'],
      ],
      ['T2'],
    );
    expect(failing.got).toEqual(failing.want);
  });

  it('power levels: ascending depth from the first, stopping at the first that fails', () => {
    // P1 (Alice) at depth +1, P2 (Bob, no power) at +2, P3 (Alice) at +3: P2 fails on top of P1, so P1 stays
    // even though P3 would pass.
    const { got, want } = endState(
      [
        pl('P1', ALICE, { users: { [ALICE]: 100 }, state_default: 40 }),
        pl('P2', BOB, { users: { [ALICE]: 100, [BOB]: 100 } }),
        pl('P3', ALICE, { users: { [ALICE]: 100 }, state_default: 60 }),
        msg('M1'),
        msg('M2'),
        msg('M3'),
      ],
      [
        ['END', 'P1', 'START'],
        ['END', 'P2', 'M1', 'START'],
        ['END', 'P3', 'M2', 'M3', 'START'],
      ],
      ['P1'],
    );
    expect(got).toEqual(want);
  });

  it('power levels: the shallowest is taken without a check (the v1 reset weakness)', () => {
    // Bob's illegitimate P2 is the shallowest, so it goes into R unchecked.
    const run = (p3Users: Record<string, number>, expected: string) => {
      const { got, want } = endState(
        [pl('P2', BOB, { users: { [ALICE]: 100, [BOB]: 100 } }), pl('P3', ALICE, { users: p3Users }), msg('M1')],
        [
          ['END', 'P2', 'START'],
          ['END', 'P3', 'M1', 'START'],
        ],
        [expected],
      );
      expect(got).toEqual(want);
    };
    // Alice's deeper P3 passes on top of P2 when it leaves Bob's 100 alone…
    run({ [ALICE]: 100, [BOB]: 100, [ZARA]: 10 }, 'P3');
    // …but can't remove it (Bob's level is not below hers), so P2 stays.
    run({ [ALICE]: 100 }, 'P2');
  });

  it('member events: a ban is not undone by a concurrent join', () => {
    const { got, want } = endState(
      [member('BAN', ALICE, BOB, 'ban'), member('JB', BOB, BOB, 'join'), msg('M1')],
      [
        ['END', 'BAN', 'M1', 'START'],
        ['END', 'JB', 'START'],
      ],
      ['BAN'],
    );
    expect(got).toEqual(want);
  });

  it('separation: a key only one state holds is not a conflict (unlike v2)', () => {
    const a = new Map([[stateMapKey('m.room.topic', ''), '$a']]);
    const b = new Map([[stateMapKey('m.room.name', ''), '$b']]);
    const { unconflicted, conflicted } = separateV1([a, b]);
    expect(unconflicted.size).toBe(2);
    expect(conflicted.size).toBe(0);
    expect(resolveStateV1([a, b], new Map(), v1)).toEqual(new Map([...a, ...b]));
  });

  it('ordering: descending depth, then ascending sha1', () => {
    const g = buildDag(v1, [...INITIAL_EVENTS, topic('T1', ALICE), topic('T2', ALICE), topic('T3', ALICE), msg('M1')], [
      INITIAL_CHAIN,
      ['END', 'T1', 'START'],
      ['END', 'T2', 'START'],
      ['END', 'T3', 'M1', 'START'],
    ]);
    const order = orderV1(['T1', 'T2', 'T3'].map((n) => g.id(n)), (id) => g.events.get(id)).map((e) => g.names.get(e.id));
    expect(order).toEqual(['T3', 'T1', 'T2']); // T3 deepest; sha1: T1 5d9d… < T2 ef78…
    // resolveState dispatches on the version's flag
    expect(resolveState([g.stateAfter.get('T1')!, g.stateAfter.get('T2')!], g.events, v1).get(stateMapKey('m.room.topic', ''))).toBe(
      g.id('T1'),
    );
  });
});
