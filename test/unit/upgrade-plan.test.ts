// Pure logic of room upgrades and space hierarchies (no server): table-driven, as test/unit does.
import { describe, expect, it } from 'vitest';
import { compareChildren, decodeHierarchyToken, encodeHierarchyToken, hasValidVia } from '../../src/rooms/hierarchy.js';
import { getRoomVersion } from '../../src/rooms/roomVersions.js';
import {
  levelToCopyState,
  normalizePowerLevels,
  planReplacementRoom,
  restrictedPowerLevels,
  splitCanonicalAlias,
} from '../../src/rooms/upgrade.js';
import { stateMapKey, type Pdu } from '../../src/types/pdu.js';

function pdu(type: string, stateKey: string, content: Record<string, unknown>, extra: Partial<Pdu> = {}): Pdu {
  return {
    type,
    state_key: stateKey,
    content,
    sender: '@alice:hs',
    room_id: '!old:hs',
    origin_server_ts: 1000,
    depth: 1,
    auth_events: [],
    prev_events: [],
    hashes: { sha256: 'x' },
    signatures: {},
    ...extra,
  };
}

describe('room upgrade planning', () => {
  it.each([
    [{ ban: '50', users: { '@a:hs': '100', '@b:hs': 'nope' }, events: { 'm.room.name': 50.7 } }, { ban: 50, users: { '@a:hs': 100 }, events: { 'm.room.name': 50 } }],
    [{ kick: 'x', notifications: { room: ' 20 ' }, extra: true }, { notifications: { room: 20 }, extra: true }],
    [{ users: 'not a map' }, {}],
  ])('normalizes power levels %j', (input, expected) => {
    expect(normalizePowerLevels(input)).toEqual(expected);
  });

  it.each([
    [{}, 50],
    [{ state_default: 20, ban: 30 }, 30],
    [{ events: { 'm.room.encryption': 100 } }, 100],
  ])('needs the highest state or ban level to copy state: %j → %d', (pl, level) => {
    expect(levelToCopyState(pl)).toBe(level);
  });

  it.each([
    [{ events_default: 0, invite: 0 }, { events_default: 50, invite: 50 }],
    [{ users_default: 60 }, { users_default: 60, events_default: 61, invite: 61 }],
    [{ events_default: 75, invite: 50 }, undefined],
  ])('restricts the old room %j', (pl, expected) => {
    expect(restrictedPowerLevels(pl)).toEqual(expected);
  });

  it.each([
    [{ alias: '#a:hs', alt_aliases: ['#b:hs', '#c:remote'] }, { oldRoom: { alt_aliases: ['#c:remote'] }, newRoom: { alias: '#a:hs', alt_aliases: ['#b:hs'] } }],
    [{ alias: '#a:remote' }, {}],
    [{ alias: '#a:hs' }, { oldRoom: {}, newRoom: { alias: '#a:hs' } }],
  ])('splits the canonical alias %j', (content, expected) => {
    expect(splitCanonicalAlias(content, (a) => a.endsWith(':hs'))).toEqual(expected);
  });

  it('plans the replacement: create with predecessor, member, raised then restored power levels, state, bans', () => {
    const v9 = getRoomVersion('9')!;
    const v11 = getRoomVersion('11')!;
    const state = new Map<string, Pdu>(
      [
        pdu('m.room.create', '', { creator: '@alice:hs', room_version: '9', type: 'm.space', 'm.federate': false }),
        pdu('m.room.member', '@bob:hs', { membership: 'join' }),
        pdu('m.room.member', '@eve:hs', { membership: 'ban', reason: 'spam' }),
        pdu('m.room.power_levels', '', { users: { '@alice:hs': 100, '@bob:hs': '50' }, events: { 'm.room.tombstone': 50, 'm.room.encryption': 100 } }),
        pdu('m.room.name', '', { name: 'Old' }),
        pdu('m.room.topic', '', {}),
        pdu('m.room.pinned_events', '', { pinned: ['$x'] }),
        pdu('m.space.child', '!child:hs', { via: ['hs'] }),
        pdu('m.space.child', '!gone:hs', {}),
      ].map((p) => [stateMapKey(p.type, p.state_key!), p]),
    );
    const plan = planReplacementRoom({
      oldRoomId: '!old:hs',
      oldState: state,
      oldVersion: v9,
      newVersion: v11,
      upgrader: '@bob:hs',
      memberContent: { membership: 'join', displayname: 'Bob' },
      tombstoneEventId: '$tomb',
      isLocalAlias: () => true,
    });
    const summary = plan.events.map((d) => [d.type, d.stateKey]);
    expect(summary).toEqual([
      ['m.room.create', ''],
      ['m.room.member', '@bob:hs'],
      ['m.room.power_levels', ''],
      // Absent from the old room: the private_chat preset's values, as Synapse.
      ['m.room.join_rules', ''],
      ['m.room.history_visibility', ''],
      ['m.room.guest_access', ''],
      ['m.room.name', ''],
      ['m.space.child', '!child:hs'],
    ]);
    expect(plan.events.find((d) => d.type === 'm.room.guest_access')!.content).toEqual({ guest_access: 'can_join' });
    expect(plan.events[0]!.content).toEqual({ room_version: '11', predecessor: { room_id: '!old:hs', event_id: '$tomb' }, type: 'm.space', 'm.federate': false });
    expect((plan.events[2]!.content.users as Record<string, number>)['@bob:hs']).toBe(100);
    expect(plan.finalPowerLevels?.content.users).toEqual({ '@alice:hs': 100, '@bob:hs': 50 });
    expect(plan.bestEffort).toEqual([{ type: 'm.room.member', stateKey: '@eve:hs', content: { membership: 'ban', reason: 'spam' }, sender: '@bob:hs' }]);
    expect(plan.events.every((d) => d.sender === '@bob:hs')).toBe(true);
  });
});

describe('space hierarchy ordering and tokens', () => {
  const child = (roomId: string, content: Record<string, unknown>, ts = 1000) => pdu('m.space.child', roomId, { via: ['hs'], ...content }, { origin_server_ts: ts });

  it('orders children by valid order, then timestamp, then room id', () => {
    const children = [
      child('!e:hs', {}, 5),
      child('!d:hs', {}, 1),
      child('!c:hs', { order: 'b' }),
      child('!b:hs', { order: 'a' }),
      child('!a:hs', { order: 'a' }),
      child('!f:hs', { order: '\u00e9' }, 1), // invalid order: as if absent
      child('!g:hs', { order: 7 }, 1),
    ];
    expect(children.sort(compareChildren).map((c) => c.state_key)).toEqual(['!a:hs', '!b:hs', '!c:hs', '!d:hs', '!f:hs', '!g:hs', '!e:hs']);
  });

  it.each([
    [{ via: ['hs'] }, true],
    [{ via: [] }, false],
    [{ via: 'hs' }, false],
    [{ via: ['hs', 3] }, false],
    [{}, false],
  ])('via %j is valid: %s', (content, valid) => {
    expect(hasValidVia(content)).toBe(valid);
  });

  it('round-trips pagination tokens and rejects garbage', () => {
    const t = { r: '!s:hs', d: 3, s: true, o: 7 };
    expect(decodeHierarchyToken(encodeHierarchyToken(t))).toEqual(t);
    expect(decodeHierarchyToken('garbage')).toBeUndefined();
    expect(decodeHierarchyToken(Buffer.from('{"r":"!s:hs","d":1,"s":false,"o":-1}').toString('base64url'))).toBeUndefined();
  });
});
