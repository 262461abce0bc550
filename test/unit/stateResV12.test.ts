import { describe, expect, it } from 'vitest';
import { encodeBase64Url } from '../../src/crypto/base64.js';
import { signingKeyFromSeed } from '../../src/crypto/signing.js';
import { authTypesForEvent, checkAuth, roomCreators, userPowerLevel, withImpliedCreate } from '../../src/rooms/authRules.js';
import {
  buildPdu,
  checkPduFormat,
  createEventIdOfRoom,
  impliedAuthEventIds,
  referenceHashBytes,
  roomIdFromCreateEventId,
} from '../../src/rooms/eventFormat.js';
import {
  getKnownRoomVersion,
  getRoomVersion,
  KNOWN_ROOM_VERSIONS,
  ROOM_VERSION_12,
  ROOM_VERSIONS,
  type RoomVersion,
} from '../../src/rooms/roomVersions.js';
import { authStateFor } from '../../src/rooms/stateResolution/common.js';
import {
  resolveState,
  reverseTopologicalPowerOrder,
  senderPowerFromAuthEvents,
} from '../../src/rooms/stateResolution/index.js';
import { stateMapKey, type Pdu } from '../../src/types/pdu.js';
import { ALICE, BOB, buildChain, CHARLIE, ev, EVELYN, member, pl, ZARA, type Graph } from './stateResGraph.js';

const V12 = ROOM_VERSION_12;
const V11 = getRoomVersion('11')!;
const DAVE = '@dave:example.com';
const key = signingKeyFromSeed('a_key', new Uint8Array(32).fill(7));

describe('room version 12 record', () => {
  it('is implemented and served', () => {
    expect(getRoomVersion('12')).toBe(V12);
    expect(ROOM_VERSIONS.has('12')).toBe(true);
    expect(getKnownRoomVersion('12')).toBe(V12);
    expect([...KNOWN_ROOM_VERSIONS.keys()].at(-1)).toBe('12');
  });

  it('flags: v11 plus hashed room ids, infinite creators, state res v2.1', () => {
    expect(V12).toMatchObject({
      ...V11,
      id: '12',
      stateResolution: 'v2.1',
      roomIdFromCreateEvent: true,
      infiniteCreatorPower: true,
    });
    for (const v of [...ROOM_VERSIONS.values()].filter((r) => r.id !== '12')) {
      expect([v.id, v.roomIdFromCreateEvent, v.infiniteCreatorPower, v.stateResolution === 'v2.1']).toEqual([v.id, false, false, false]);
    }
  });
});

describe('v12 room ids (MSC4291)', () => {
  const { pdu: create, eventId: createId } = buildPdu(
    {
      room_id: '!ignored:example.com',
      sender: ALICE,
      type: 'm.room.create',
      state_key: '',
      content: { room_version: '12' },
      prev_events: [],
      auth_events: [],
      depth: 1,
      origin_server_ts: 1_700_000_000_000,
    },
    V12,
    { serverName: 'example.com', key },
  );
  const roomId = roomIdFromCreateEventId(createId);

  it('the room id is ! + the URL-safe reference hash of the create event, with no server part', () => {
    expect(create.room_id).toBeUndefined();
    expect(roomId).toMatch(/^![A-Za-z0-9_-]{43}$/);
    expect(roomId.slice(1)).toBe(encodeBase64Url(referenceHashBytes(create, V12)));
    expect(createEventIdOfRoom(roomId, V12)).toBe(createId);
    expect(createEventIdOfRoom('!abc:example.com', V11)).toBeUndefined();
  });

  it('format: the create event must not carry a room_id (and other events must)', () => {
    expect(checkPduFormat(create, V12)).toBeNull();
    expect(checkPduFormat({ ...create, room_id: roomId }, V12)).toMatch(/must not have a room_id/);
    expect(checkPduFormat(create, V11)).toMatch(/room_id/);
    const { pdu: msg } = buildPdu(
      { room_id: roomId, sender: ALICE, type: 'm.room.message', content: {}, prev_events: [createId], auth_events: [], depth: 2, origin_server_ts: 1 },
      V12,
      { serverName: 'example.com', key },
    );
    expect(msg.room_id).toBe(roomId);
    expect(checkPduFormat(msg, V12)).toBeNull();
    expect(checkPduFormat({ ...msg, room_id: undefined }, V12)).toMatch(/room_id/);
  });

  it('auth rule 1: the create event is allowed without room_id, rejected with one', () => {
    expect(checkAuth(create, new Map(), V12).allowed).toBe(true);
    expect(checkAuth({ ...create, room_id: roomId }, new Map(), V12).allowed).toBe(false);
    expect(checkAuth({ ...create, content: { room_version: '12', additional_creators: [BOB] } }, new Map(), V12).allowed).toBe(true);
    for (const bad of [['not-a-user'], 'string', [BOB, 42]]) {
      expect(checkAuth({ ...create, content: { additional_creators: bad } }, new Map(), V12).allowed).toBe(false);
    }
  });

  it('auth rules 2 and 3.2: room_id must name the create event, which is implied, never listed', () => {
    const join = (f: Partial<Pdu> = {}): Pdu => ({
      auth_events: [],
      prev_events: [createId],
      content: { membership: 'join' },
      depth: 2,
      hashes: { sha256: 'AAAA' },
      origin_server_ts: 2,
      room_id: roomId,
      sender: ALICE,
      state_key: ALICE,
      type: 'm.room.member',
      signatures: {},
      ...f,
    });
    const state = withImpliedCreate(new Map(), create, V12);
    expect(state.get(stateMapKey('m.room.create', ''))).toBe(create);
    expect(checkAuth(join(), state, V12)).toEqual({ allowed: true });
    expect(checkAuth(join(), new Map(), V12).allowed).toBe(false); // no create at all
    expect(checkAuth(join({ room_id: '!other' }), state, V12).allowed).toBe(false);
    expect(checkAuth(join({ auth_events: [createId] }), state, V12).allowed).toBe(false);
    expect(impliedAuthEventIds(join(), V12)).toEqual([createId]);
    expect(impliedAuthEventIds(create, V12)).toEqual([]);
  });

  it('auth events selection leaves the create event out from v12 only', () => {
    const sel = (v: RoomVersion) => authTypesForEvent('m.room.message', undefined, {}, ALICE, v).map(([t]) => t);
    expect(sel(V12)).toEqual(['m.room.power_levels', 'm.room.member']);
    expect(sel(V11)).toEqual(['m.room.create', 'm.room.power_levels', 'm.room.member']);
  });
});

/** A v12 room: Alice creates (Bob additional creator), Carol is PL 100, Dave PL 0. */
function creatorRoom(): Graph {
  return buildChain(V12, [
    ev('CREATE', ALICE, 'm.room.create', '', { room_version: '12', additional_creators: [BOB] }),
    member('MA', ALICE, ALICE, 'join'),
    pl('PL', ALICE, { users: { [CHARLIE]: 100 } }),
    ev('JR', ALICE, 'm.room.join_rules', '', { join_rule: 'public' }),
    member('MB', BOB, BOB, 'join'),
    member('MC', CHARLIE, CHARLIE, 'join'),
    member('MD', DAVE, DAVE, 'join'),
  ]);
}

describe('v12 creators have infinite power (MSC4289)', () => {
  const g = creatorRoom();
  const state = g.stateAfter.get('MD')!;
  const lookup = (id: string) => g.events.get(id);
  const stateMap = new Map([...state].map(([k, id]) => [k, g.events.get(id)!]));
  const check = (e: Pdu) => checkAuth(e, authStateFor(e, state, lookup, V12, undefined), V12).allowed;
  const event = (sender: string, type: string, stateKey: string | undefined, content: Record<string, unknown>): Pdu => ({
    ...g.pdu('MD'),
    sender,
    type,
    content,
    auth_events: [],
    ...(stateKey !== undefined ? { state_key: stateKey } : { state_key: undefined }),
  });

  it('sender and additional_creators are the creators, at infinite level', () => {
    expect([...roomCreators(stateMap, V12)].sort()).toEqual([ALICE, BOB].sort());
    expect(userPowerLevel(stateMap, ALICE, V12)).toBe(Infinity);
    expect(userPowerLevel(stateMap, BOB, V12)).toBe(Infinity);
    expect(userPowerLevel(stateMap, CHARLIE, V12)).toBe(100);
    expect(userPowerLevel(stateMap, DAVE, V12)).toBe(0);
    // v11 semantics on the same state: the creator gets nothing special once power levels exist.
    expect(userPowerLevel(stateMap, ALICE, V11)).toBe(0);
  });

  it('power levels may not list a creator', () => {
    expect(check(event(ALICE, 'm.room.power_levels', '', { users: { [CHARLIE]: 100, [DAVE]: 50 } }))).toBe(true);
    expect(check(event(ALICE, 'm.room.power_levels', '', { users: { [ALICE]: 100 } }))).toBe(false);
    expect(check(event(ALICE, 'm.room.power_levels', '', { users: { [BOB]: 100 } }))).toBe(false);
  });

  it('nobody outranks a creator, creators included', () => {
    expect(check(event(CHARLIE, 'm.room.member', BOB, { membership: 'ban' }))).toBe(false);
    expect(check(event(BOB, 'm.room.member', ALICE, { membership: 'leave' }))).toBe(false);
    expect(check(event(BOB, 'm.room.member', CHARLIE, { membership: 'ban' }))).toBe(true);
    expect(check(event(ALICE, 'm.room.power_levels', '', { users: { [CHARLIE]: 0 } }))).toBe(true); // demote a PL-100 user
    expect(check(event(CHARLIE, 'm.room.power_levels', '', { users: { [CHARLIE]: 100, [DAVE]: 100 } }))).toBe(true);
    expect(check(event(CHARLIE, 'm.room.power_levels', '', { users: { [CHARLIE]: 100, [DAVE]: 101 } }))).toBe(false);
  });

  it('the power ordering of state res sees creators above everyone', () => {
    expect(senderPowerFromAuthEvents(g.pdu('MB'), lookup, V12)).toBe(Infinity);
    const g2 = buildChain(V12, [
      ev('CREATE', ALICE, 'm.room.create', '', { room_version: '12', additional_creators: [BOB] }),
      member('MA', ALICE, ALICE, 'join'),
      pl('PL', ALICE, { users: { [CHARLIE]: 100 } }),
      ev('JR', ALICE, 'm.room.join_rules', '', { join_rule: 'public' }),
      member('MB', BOB, BOB, 'join'),
      member('MC', CHARLIE, CHARLIE, 'join'),
      pl('XC', CHARLIE, { users: { [CHARLIE]: 100 } }, { ts: 10, prev: ['MC'] }),
      pl('XB', BOB, { users: { [CHARLIE]: 100 } }, { ts: 20, prev: ['MC'] }),
    ]);
    const ids = [g2.id('XC'), g2.id('XB')];
    const order = reverseTopologicalPowerOrder(ids, new Set(ids), (id) => g2.events.get(id), V12);
    expect(order.map((id) => g2.names.get(id))).toEqual(['XB', 'XC']); // Bob (∞) before Charlie (100) despite his later ts
  });
});

describe('state resolution v2.1 (MSC4297)', () => {
  const asV2: RoomVersion = { ...V12, stateResolution: 'v2' };

  it('starts from the empty state: conflicted join rules are not reset by unconflicted memberships', () => {
    // Alice (creator) sets the room public then invite-only, then leaves. A fork cites the old join rules.
    const g = buildChain(V12, [
      ev('CREATE', ALICE, 'm.room.create', '', { room_version: '12' }),
      member('MA1', ALICE, ALICE, 'join', { auth: [] }),
      pl('POWER', ALICE, { users: { [BOB]: 100 } }, { auth: ['MA1'] }),
      ev('JR1', ALICE, 'm.room.join_rules', '', { join_rule: 'public' }, { auth: ['MA1', 'POWER'] }),
      member('MB', BOB, BOB, 'join', { auth: ['POWER', 'JR1'] }),
      ev('JR2', ALICE, 'm.room.join_rules', '', { join_rule: 'invite' }, { auth: ['MA1', 'POWER'] }),
      member('MA2', ALICE, ALICE, 'leave', { auth: ['POWER', 'MA1'] }),
    ]);
    const correct = g.state('CREATE', 'MA2', 'MB', 'POWER', 'JR2');
    const incorrect = g.state('CREATE', 'MA2', 'MB', 'POWER', 'JR1');
    expect(g.named(resolveState([correct, incorrect], g.events, V12))).toEqual(g.named(correct));
    // Plain v2 starts from the unconflicted state, where Alice has left: both join rules fail, the key is lost.
    const v2 = resolveState([correct, incorrect], g.events, asV2);
    expect(v2.has(stateMapKey('m.room.join_rules', ''))).toBe(false);
  });

  it('replays the conflicted state subgraph: an event citing stale power levels cannot reset them', () => {
    const g = buildChain(V12, [
      ev('CREATE', ALICE, 'm.room.create', '', { room_version: '12' }),
      member('MA', ALICE, ALICE, 'join', { auth: [] }),
      pl('POWER1', ALICE, { users: {} }, { auth: ['MA'] }),
      ev('JR', ALICE, 'm.room.join_rules', '', { join_rule: 'public' }, { auth: ['MA', 'POWER1'] }),
      member('MB', BOB, BOB, 'join', { auth: ['POWER1', 'JR'] }),
      member('MC', CHARLIE, CHARLIE, 'join', { auth: ['POWER1', 'JR'] }),
      pl('POWER2', ALICE, { users: { [BOB]: 50 } }, { auth: ['MA', 'POWER1'] }),
      pl('POWER3', BOB, { users: { [BOB]: 50, [CHARLIE]: 50 } }, { auth: ['MB', 'POWER2'] }),
      member('ME1', EVELYN, EVELYN, 'join', { auth: ['POWER3', 'JR'] }),
      // Evelyn changes her name citing the OLD power levels (but, through ME1, the new ones too).
      member('ME2', EVELYN, EVELYN, 'join', { auth: ['POWER1', 'JR', 'ME1'] }),
      member('MZ', ZARA, ZARA, 'join', { auth: ['POWER3', 'JR'] }),
    ]);
    const dodgy = g.state('CREATE', 'MA', 'MB', 'MC', 'ME2', 'POWER1', 'JR');
    const sensible = g.state('CREATE', 'MA', 'MB', 'MC', 'MZ', 'POWER3', 'JR');
    const expected = g.state('CREATE', 'MA', 'MB', 'MC', 'ME1', 'MZ', 'POWER3', 'JR');
    expect(g.named(resolveState([dodgy, sensible], g.events, V12))).toEqual(g.named(expected));
    expect(g.named(resolveState([sensible, dodgy], g.events, V12))).toEqual(g.named(expected));
  });
});
