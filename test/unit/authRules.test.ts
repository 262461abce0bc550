import { describe, expect, it } from 'vitest';
import { signingKeyFromSeed, signJson } from '../../src/crypto/signing.js';
import {
  authTypesForEvent,
  buildAuthState,
  checkAuth,
  powerLevelFor,
  requiredPowerLevel,
  userPowerLevel,
  type CheckAuthOptions,
} from '../../src/rooms/authRules.js';
import { eventIdOf } from '../../src/rooms/eventFormat.js';
import { getRoomVersion, ROOM_VERSIONS, type RoomVersion } from '../../src/rooms/roomVersions.js';
import { stateMapKey, type Pdu, type StateMap } from '../../src/types/pdu.js';

const ROOM = '!room:a.example';
const ALICE = '@alice:a.example'; // creator, PL 100
const MOD = '@mod:a.example'; // PL 50
const MOD2 = '@mod2:b.example'; // PL 50
const BOB = '@bob:b.example'; // joined, PL 0
const CAROL = '@carol:c.example'; // not in the room
const DAVE = '@dave:d.example'; // not in the room

// Versions 1–11: these tables build classic `!id:server` rooms; v12 has its own (stateResV12.test.ts).
const ALL = [...ROOM_VERSIONS.keys()].filter((v) => !ROOM_VERSIONS.get(v)!.roomIdFromCreateEvent);
const from = (n: number) => ALL.filter((v) => Number(v) >= n);
const before = (n: number) => ALL.filter((v) => Number(v) < n);
const rv = (id: string): RoomVersion => getRoomVersion(id)!;

let counter = 0;
function pdu(version: RoomVersion, f: Partial<Pdu> & { type: string; sender: string }): Pdu {
  const p: Pdu = {
    auth_events: [],
    prev_events: ['$prev'],
    content: {},
    depth: 10,
    hashes: { sha256: 'AAAA' },
    origin_server_ts: 1000 + counter++,
    room_id: ROOM,
    signatures: {},
    ...f,
  };
  if (version.eventFormat === 'v1' && p.event_id === undefined) p.event_id = `$e${counter}:${f.sender.split(':')[1]}`;
  return p;
}

const member = (v: RoomVersion, user: string, membership: string, extra: Record<string, unknown> = {}) =>
  pdu(v, { type: 'm.room.member', sender: user, state_key: user, content: { membership, ...extra } });

interface RoomOpts {
  joinRule?: string | null;
  pl?: Record<string, unknown> | null;
  members?: Record<string, string>;
  createContent?: Record<string, unknown>;
  extra?: Pdu[];
}

function room(v: RoomVersion, o: RoomOpts = {}): StateMap {
  const state: StateMap = new Map();
  const put = (e: Pdu) => state.set(stateMapKey(e.type, e.state_key!), e);
  put(
    pdu(v, {
      type: 'm.room.create',
      sender: ALICE,
      state_key: '',
      prev_events: [],
      depth: 1,
      content: o.createContent ?? { creator: ALICE, room_version: v.id },
    }),
  );
  const members = o.members ?? { [ALICE]: 'join', [MOD]: 'join', [MOD2]: 'join', [BOB]: 'join' };
  for (const [u, m] of Object.entries(members)) put(member(v, u, m));
  if (o.pl !== null) {
    put(
      pdu(v, {
        type: 'm.room.power_levels',
        sender: ALICE,
        state_key: '',
        content: o.pl ?? { users: { [ALICE]: 100, [MOD]: 50, [MOD2]: 50 }, users_default: 0 },
      }),
    );
  }
  if (o.joinRule !== null) {
    put(pdu(v, { type: 'm.room.join_rules', sender: ALICE, state_key: '', content: { join_rule: o.joinRule ?? 'public' } }));
  }
  for (const e of o.extra ?? []) put(e);
  return state;
}

/** Select the auth events from the room state the way a server building the event would. */
function selectAuth(event: Pdu, state: StateMap, v: RoomVersion): StateMap {
  const out: StateMap = new Map();
  for (const [t, k] of authTypesForEvent(event.type, event.state_key, event.content, event.sender, v)) {
    const e = state.get(stateMapKey(t, k));
    if (e) out.set(stateMapKey(t, k), e);
  }
  return out;
}

function check(v: RoomVersion, event: Pdu, state: StateMap, opts?: CheckAuthOptions): boolean {
  return checkAuth(event, selectAuth(event, state, v), v, opts).allowed;
}

interface Case {
  name: string;
  versions: string[];
  event: (v: RoomVersion) => Pdu;
  state?: (v: RoomVersion) => StateMap;
  allowed: boolean;
}

function runCases(cases: Case[]) {
  const rows = cases.flatMap((c) => c.versions.map((ver) => [`${c.name} [v${ver}]`, ver, c] as const));
  it.each(rows)('%s', (_name, ver, c) => {
    const v = rv(ver);
    const state = c.state ? c.state(v) : room(v);
    expect(check(v, c.event(v), state)).toBe(c.allowed);
  });
}

const msg = (v: RoomVersion, sender: string, content: Record<string, unknown> = { body: 'hi' }) =>
  pdu(v, { type: 'm.room.message', sender, content });
const state = (v: RoomVersion, sender: string, type: string, stateKey: string, content: Record<string, unknown>) =>
  pdu(v, { type, sender, state_key: stateKey, content });
const membership = (v: RoomVersion, sender: string, target: string, m: string, extra: Record<string, unknown> = {}) =>
  pdu(v, { type: 'm.room.member', sender, state_key: target, content: { membership: m, ...extra } });

describe('create event', () => {
  const create = (v: RoomVersion, f: Partial<Pdu> = {}) =>
    pdu(v, { type: 'm.room.create', sender: ALICE, state_key: '', prev_events: [], content: { creator: ALICE }, ...f });
  const empty = () => new Map() as StateMap;
  runCases([
    { name: 'valid create', versions: ALL, event: (v) => create(v), state: empty, allowed: true },
    { name: 'with room_version', versions: ALL, event: (v) => create(v, { content: { creator: ALICE, room_version: '9' } }), state: empty, allowed: true },
    { name: 'unknown room_version', versions: ALL, event: (v) => create(v, { content: { creator: ALICE, room_version: '99' } }), state: empty, allowed: false },
    { name: 'has prev_events', versions: ALL, event: (v) => create(v, { prev_events: ['$x'] }), state: empty, allowed: false },
    { name: 'room domain differs from sender', versions: ALL, event: (v) => create(v, { sender: BOB }), state: empty, allowed: false },
    { name: 'no creator before v11', versions: before(11), event: (v) => create(v, { content: {} }), state: empty, allowed: false },
    { name: 'no creator in v11', versions: ['11'], event: (v) => create(v, { content: {} }), state: empty, allowed: true },
  ]);
});

describe('auth events', () => {
  it('requires a create event, matching room ids and only selected entries', () => {
    const v = rv('10');
    const s = room(v);
    const e = msg(v, BOB);
    const auth = selectAuth(e, s, v);
    expect(checkAuth(e, auth, v)).toEqual({ allowed: true });
    const noCreate = new Map(auth);
    noCreate.delete(stateMapKey('m.room.create', ''));
    expect(checkAuth(e, noCreate, v).allowed).toBe(false);
    const extra = new Map(auth);
    extra.set(stateMapKey('m.room.join_rules', ''), s.get(stateMapKey('m.room.join_rules', ''))!);
    expect(checkAuth(e, extra, v)).toMatchObject({ allowed: false, reason: expect.stringContaining('unexpected') });
    const otherRoom = new Map(auth);
    otherRoom.set(stateMapKey('m.room.power_levels', ''), { ...s.get(stateMapKey('m.room.power_levels', ''))!, room_id: '!other:x' });
    expect(checkAuth(e, otherRoom, v).allowed).toBe(false);
  });

  it('buildAuthState rejects duplicates', () => {
    const v = rv('10');
    const s = room(v);
    const pl = s.get(stateMapKey('m.room.power_levels', ''))!;
    const create = s.get(stateMapKey('m.room.create', ''))!;
    expect(buildAuthState([create, pl]).ok).toBe(true);
    expect(buildAuthState([create, pl, { ...pl, depth: 99 }]).ok).toBe(false);
    expect(buildAuthState([msg(v, BOB)]).ok).toBe(false);
  });

  it('never throws on malformed events', () => {
    const v = rv('10');
    const bad = { ...msg(v, BOB), content: null, sender: 5 } as unknown as Pdu;
    expect(checkAuth(bad, room(v), v).allowed).toBe(false);
  });
});

describe('authTypesForEvent', () => {
  const v = rv('10');
  it.each<[string, string, string | undefined, Record<string, unknown>, string, string[][]]>([
    ['create', 'm.room.create', '', {}, ALICE, []],
    ['message', 'm.room.message', undefined, {}, BOB, [['m.room.create', ''], ['m.room.power_levels', ''], ['m.room.member', BOB]]],
    ['self join', 'm.room.member', BOB, { membership: 'join' }, BOB, [['m.room.create', ''], ['m.room.power_levels', ''], ['m.room.member', BOB], ['m.room.join_rules', '']]],
    ['kick', 'm.room.member', BOB, { membership: 'leave' }, MOD, [['m.room.create', ''], ['m.room.power_levels', ''], ['m.room.member', MOD], ['m.room.member', BOB]]],
    ['knock', 'm.room.member', CAROL, { membership: 'knock' }, CAROL, [['m.room.create', ''], ['m.room.power_levels', ''], ['m.room.member', CAROL], ['m.room.join_rules', '']]],
    ['3pid invite', 'm.room.member', CAROL, { membership: 'invite', third_party_invite: { signed: { token: 'tok' } } }, BOB, [['m.room.create', ''], ['m.room.power_levels', ''], ['m.room.member', BOB], ['m.room.member', CAROL], ['m.room.join_rules', ''], ['m.room.third_party_invite', 'tok']]],
    ['restricted join', 'm.room.member', CAROL, { membership: 'join', join_authorised_via_users_server: ALICE }, CAROL, [['m.room.create', ''], ['m.room.power_levels', ''], ['m.room.member', CAROL], ['m.room.join_rules', ''], ['m.room.member', ALICE]]],
  ])('%s', (_n, type, sk, content, sender, expected) => {
    expect(authTypesForEvent(type, sk, content, sender, v)).toEqual(expected);
  });
  it('authoriser only where restricted rooms exist', () => {
    const c = { membership: 'join', join_authorised_via_users_server: ALICE };
    expect(authTypesForEvent('m.room.member', CAROL, c, CAROL, rv('7'))).not.toContainEqual(['m.room.member', ALICE]);
    expect(authTypesForEvent('m.room.member', CAROL, c, CAROL, rv('8'))).toContainEqual(['m.room.member', ALICE]);
  });
});

describe('creator first join', () => {
  it.each(ALL)('only right after the create event, only the creator [v%s]', (ver) => {
    const v = rv(ver);
    const s = room(v, { members: {}, pl: null, joinRule: null });
    const createId = eventIdOf(s.get(stateMapKey('m.room.create', ''))!, v);
    expect(check(v, pdu(v, { ...member(v, ALICE, 'join'), prev_events: [createId] }), s)).toBe(true);
    expect(check(v, pdu(v, { ...member(v, ALICE, 'join'), prev_events: ['$other:a.example'] }), s)).toBe(false);
    expect(check(v, pdu(v, { ...member(v, ALICE, 'join'), prev_events: [createId, '$other:a.example'] }), s)).toBe(false);
    expect(check(v, pdu(v, { ...member(v, BOB, 'join'), prev_events: [createId] }), s)).toBe(false);
  });
  it('v11 creator is the create sender, not content.creator', () => {
    for (const [ver, allowed] of [['10', false], ['11', true]] as const) {
      const v = rv(ver);
      const s = room(v, { members: {}, pl: null, joinRule: null, createContent: { creator: BOB } });
      const createId = eventIdOf(s.get(stateMapKey('m.room.create', ''))!, v);
      const join = pdu(v, { ...member(v, ALICE, 'join'), prev_events: [createId] });
      expect(check(v, join, s)).toBe(allowed);
      const bobJoin = pdu(v, { ...member(v, BOB, 'join'), prev_events: [createId] });
      expect(check(v, bobJoin, s)).toBe(!allowed);
    }
  });
});

describe('joins', () => {
  const withMembers = (joinRule: string | null, extra: Record<string, string> = {}) => (v: RoomVersion) =>
    room(v, { joinRule, members: { [ALICE]: 'join', [MOD]: 'join', [BOB]: 'join', ...extra } });
  const restrictedJoin = (authoriser?: string) => (v: RoomVersion) =>
    membership(v, CAROL, CAROL, 'join', authoriser ? { join_authorised_via_users_server: authoriser } : {});
  runCases([
    { name: 'public: anyone joins', versions: ALL, event: (v) => member(v, CAROL, 'join'), allowed: true },
    { name: 'public: already joined re-join', versions: ALL, event: (v) => member(v, BOB, 'join'), allowed: true },
    { name: 'cannot join someone else', versions: ALL, event: (v) => membership(v, BOB, CAROL, 'join'), allowed: false },
    { name: 'public: banned cannot join', versions: ALL, event: (v) => member(v, CAROL, 'join'), state: withMembers('public', { [CAROL]: 'ban' }), allowed: false },
    { name: 'invite: uninvited refused', versions: ALL, event: (v) => member(v, CAROL, 'join'), state: withMembers('invite'), allowed: false },
    { name: 'invite: invited joins', versions: ALL, event: (v) => member(v, CAROL, 'join'), state: withMembers('invite', { [CAROL]: 'invite' }), allowed: true },
    { name: 'invite: left user refused', versions: ALL, event: (v) => member(v, CAROL, 'join'), state: withMembers('invite', { [CAROL]: 'leave' }), allowed: false },
    { name: 'no join_rules: behaves as invite', versions: ALL, event: (v) => member(v, CAROL, 'join'), state: withMembers(null), allowed: false },
    { name: 'private: refused', versions: ALL, event: (v) => member(v, CAROL, 'join'), state: withMembers('private'), allowed: false },
    { name: 'knock: invited joins', versions: from(7), event: (v) => member(v, CAROL, 'join'), state: withMembers('knock', { [CAROL]: 'invite' }), allowed: true },
    { name: 'knock: knocking user cannot join', versions: from(7), event: (v) => member(v, CAROL, 'join'), state: withMembers('knock', { [CAROL]: 'knock' }), allowed: false },
    { name: 'knock rule unknown before v7', versions: before(7), event: (v) => member(v, CAROL, 'join'), state: withMembers('knock', { [CAROL]: 'invite' }), allowed: false },
    { name: 'restricted: authorised by joined inviter', versions: from(8), event: restrictedJoin(ALICE), state: withMembers('restricted'), allowed: true },
    { name: 'restricted: no authoriser', versions: from(8), event: restrictedJoin(), state: withMembers('restricted'), allowed: false },
    { name: 'restricted: authoriser not joined', versions: from(8), event: restrictedJoin(DAVE), state: withMembers('restricted', { [DAVE]: 'leave' }), allowed: false },
    { name: 'restricted: invited needs no authoriser', versions: from(8), event: restrictedJoin(), state: withMembers('restricted', { [CAROL]: 'invite' }), allowed: true },
    { name: 'restricted: unknown before v8', versions: before(8), event: restrictedJoin(ALICE), state: withMembers('restricted'), allowed: false },
    { name: 'knock_restricted: authorised join', versions: from(10), event: restrictedJoin(ALICE), state: withMembers('knock_restricted'), allowed: true },
    { name: 'knock_restricted: invited join', versions: from(10), event: restrictedJoin(), state: withMembers('knock_restricted', { [CAROL]: 'invite' }), allowed: true },
    { name: 'knock_restricted: unknown before v10', versions: before(10), event: restrictedJoin(ALICE), state: withMembers('knock_restricted'), allowed: false },
  ]);

  it('restricted: authoriser must reach the invite level', () => {
    for (const ver of from(8)) {
      const v = rv(ver);
      const s = room(v, { joinRule: 'restricted', pl: { users: { [ALICE]: 100, [MOD]: 50 }, invite: 50 } });
      expect(check(v, restrictedJoin(BOB)(v), s)).toBe(false);
      expect(check(v, restrictedJoin(MOD)(v), s)).toBe(true);
    }
  });

  it('restricted: signature of the authorising server, when checked here', () => {
    const v = rv('9');
    const s = room(v, { joinRule: 'restricted' });
    const e = restrictedJoin(ALICE)(v);
    expect(check(v, e, s, { isSignedBy: (_e, server) => server === 'a.example' })).toBe(true);
    expect(check(v, e, s, { isSignedBy: () => false })).toBe(false);
  });
});

describe('invites, leaves, kicks and bans', () => {
  const plInvite50 = (v: RoomVersion) => room(v, { pl: { users: { [ALICE]: 100, [MOD]: 50 }, invite: 50 } });
  const withCarol = (m: string) => (v: RoomVersion) =>
    room(v, { members: { [ALICE]: 'join', [MOD]: 'join', [MOD2]: 'join', [BOB]: 'join', [CAROL]: m } });
  runCases([
    { name: 'member invites (invite level 0)', versions: ALL, event: (v) => membership(v, BOB, CAROL, 'invite'), allowed: true },
    { name: 'non-member cannot invite', versions: ALL, event: (v) => membership(v, DAVE, CAROL, 'invite'), allowed: false },
    { name: 'below invite level', versions: ALL, event: (v) => membership(v, BOB, CAROL, 'invite'), state: plInvite50, allowed: false },
    { name: 'at invite level', versions: ALL, event: (v) => membership(v, MOD, CAROL, 'invite'), state: plInvite50, allowed: true },
    { name: 'cannot invite a joined user', versions: ALL, event: (v) => membership(v, MOD, BOB, 'invite'), allowed: false },
    { name: 'cannot invite a banned user', versions: ALL, event: (v) => membership(v, MOD, CAROL, 'invite'), state: withCarol('ban'), allowed: false },
    { name: 're-invite an invited user', versions: ALL, event: (v) => membership(v, MOD, CAROL, 'invite'), state: withCarol('invite'), allowed: true },

    { name: 'member leaves', versions: ALL, event: (v) => member(v, BOB, 'leave'), allowed: true },
    { name: 'invitee rejects', versions: ALL, event: (v) => member(v, CAROL, 'leave'), state: withCarol('invite'), allowed: true },
    { name: 'stranger cannot leave', versions: ALL, event: (v) => member(v, CAROL, 'leave'), allowed: false },
    { name: 'banned user cannot unban self', versions: ALL, event: (v) => member(v, CAROL, 'leave'), state: withCarol('ban'), allowed: false },
    { name: 'knocker retracts', versions: from(7), event: (v) => member(v, CAROL, 'leave'), state: withCarol('knock'), allowed: true },
    { name: 'mod kicks user', versions: ALL, event: (v) => membership(v, MOD, BOB, 'leave'), allowed: true },
    { name: 'mod cannot kick equal mod', versions: ALL, event: (v) => membership(v, MOD, MOD2, 'leave'), allowed: false },
    { name: 'mod cannot kick admin', versions: ALL, event: (v) => membership(v, MOD, ALICE, 'leave'), allowed: false },
    { name: 'user cannot kick', versions: ALL, event: (v) => membership(v, BOB, MOD, 'leave'), allowed: false },
    { name: 'non-member cannot kick', versions: ALL, event: (v) => membership(v, DAVE, BOB, 'leave'), allowed: false },
    { name: 'mod unbans (ban 50)', versions: ALL, event: (v) => membership(v, MOD, CAROL, 'leave'), state: withCarol('ban'), allowed: true },
    {
      name: 'unban needs ban level',
      versions: ALL,
      event: (v) => membership(v, MOD, CAROL, 'leave'),
      state: (v) => room(v, { pl: { users: { [ALICE]: 100, [MOD]: 50 }, ban: 75 }, members: { [ALICE]: 'join', [MOD]: 'join', [CAROL]: 'ban' } }),
      allowed: false,
    },
    {
      name: 'kick needs kick level',
      versions: ALL,
      event: (v) => membership(v, MOD, BOB, 'leave'),
      state: (v) => room(v, { pl: { users: { [ALICE]: 100, [MOD]: 50 }, kick: 60 } }),
      allowed: false,
    },

    { name: 'mod bans user', versions: ALL, event: (v) => membership(v, MOD, BOB, 'ban'), allowed: true },
    { name: 'mod bans stranger', versions: ALL, event: (v) => membership(v, MOD, CAROL, 'ban'), allowed: true },
    { name: 'user cannot ban', versions: ALL, event: (v) => membership(v, BOB, CAROL, 'ban'), allowed: false },
    { name: 'mod cannot ban admin', versions: ALL, event: (v) => membership(v, MOD, ALICE, 'ban'), allowed: false },
    { name: 'mod cannot ban equal', versions: ALL, event: (v) => membership(v, MOD, MOD2, 'ban'), allowed: false },
    { name: 'non-member cannot ban', versions: ALL, event: (v) => membership(v, DAVE, CAROL, 'ban'), allowed: false },
    { name: 'unknown membership', versions: ALL, event: (v) => membership(v, BOB, BOB, 'dance'), allowed: false },
    { name: 'member event without membership', versions: ALL, event: (v) => pdu(v, { type: 'm.room.member', sender: BOB, state_key: BOB, content: {} }), allowed: false },
  ]);
});

describe('knocks', () => {
  const rule = (joinRule: string, extra: Record<string, string> = {}) => (v: RoomVersion) =>
    room(v, { joinRule, members: { [ALICE]: 'join', [BOB]: 'join', ...extra } });
  runCases([
    { name: 'knock on knock room', versions: from(7), event: (v) => member(v, CAROL, 'knock'), state: rule('knock'), allowed: true },
    { name: 'knock unsupported before v7', versions: before(7), event: (v) => member(v, CAROL, 'knock'), state: rule('knock'), allowed: false },
    { name: 'knock on public room', versions: from(7), event: (v) => member(v, CAROL, 'knock'), state: rule('public'), allowed: false },
    { name: 'knock on invite room', versions: from(7), event: (v) => member(v, CAROL, 'knock'), state: rule('invite'), allowed: false },
    { name: 'knock for someone else', versions: from(7), event: (v) => membership(v, BOB, CAROL, 'knock'), state: rule('knock'), allowed: false },
    { name: 'banned cannot knock', versions: from(7), event: (v) => member(v, CAROL, 'knock'), state: rule('knock', { [CAROL]: 'ban' }), allowed: false },
    { name: 'joined cannot knock', versions: from(7), event: (v) => member(v, BOB, 'knock'), state: rule('knock'), allowed: false },
    { name: 'invited cannot knock', versions: from(7), event: (v) => member(v, CAROL, 'knock'), state: rule('knock', { [CAROL]: 'invite' }), allowed: false },
    { name: 'left user knocks again', versions: from(7), event: (v) => member(v, CAROL, 'knock'), state: rule('knock', { [CAROL]: 'leave' }), allowed: true },
    { name: 'knock on knock_restricted', versions: from(10), event: (v) => member(v, CAROL, 'knock'), state: rule('knock_restricted'), allowed: true },
    { name: 'knock_restricted unknown before v10', versions: ['7', '8', '9'], event: (v) => member(v, CAROL, 'knock'), state: rule('knock_restricted'), allowed: false },
  ]);
});

describe('third-party invites', () => {
  const idKey = signingKeyFromSeed('0', Buffer.alloc(32, 3));
  const otherKey = signingKeyFromSeed('0', Buffer.alloc(32, 4));
  const tpiState = (content: Record<string, unknown>, tpiSender = BOB) => (v: RoomVersion) =>
    room(v, { extra: [state(v, tpiSender, 'm.room.third_party_invite', 'tok', content)] });
  const signed = (key = idKey, mxid = CAROL) => signJson({ mxid, token: 'tok', sender: BOB }, 'id.example', key);
  const invite = (s: unknown, sender = BOB) => (v: RoomVersion) =>
    membership(v, sender, CAROL, 'invite', { third_party_invite: { display_name: 'c…', signed: s } });
  runCases([
    { name: 'signed with public_key', versions: ALL, event: invite(signed()), state: tpiState({ public_key: idKey.publicKey }), allowed: true },
    { name: 'signed with one of public_keys', versions: ALL, event: invite(signed()), state: tpiState({ public_key: otherKey.publicKey, public_keys: [{ public_key: otherKey.publicKey }, { public_key: idKey.publicKey }] }), allowed: true },
    { name: 'signed with an unknown key', versions: ALL, event: invite(signed(otherKey)), state: tpiState({ public_key: idKey.publicKey }), allowed: false },
    { name: 'mxid does not match', versions: ALL, event: invite(signed(idKey, DAVE)), state: tpiState({ public_key: idKey.publicKey }), allowed: false },
    { name: 'no signed', versions: ALL, event: invite(undefined), state: tpiState({ public_key: idKey.publicKey }), allowed: false },
    { name: 'not the sender of the 3pid invite', versions: ALL, event: invite(signed(), MOD), state: tpiState({ public_key: idKey.publicKey }), allowed: false },
    { name: 'no matching m.room.third_party_invite', versions: ALL, event: invite(signed()), allowed: false },
    { name: 'tampered signed block', versions: ALL, event: invite({ ...signed(), token: 'tok', extra: 1 }), state: tpiState({ public_key: idKey.publicKey }), allowed: false },
    { name: 'sending m.room.third_party_invite (invite 0)', versions: ALL, event: (v) => state(v, BOB, 'm.room.third_party_invite', 'tok2', {}), allowed: true },
    {
      name: 'sending m.room.third_party_invite below invite level',
      versions: ALL,
      event: (v) => state(v, BOB, 'm.room.third_party_invite', 'tok2', {}),
      state: (v) => room(v, { pl: { users: { [ALICE]: 100 }, invite: 10 } }),
      allowed: false,
    },
  ]);
});

describe('non-membership events', () => {
  const left = (v: RoomVersion) => room(v, { members: { [ALICE]: 'join', [BOB]: 'leave', [CAROL]: 'invite' } });
  runCases([
    { name: 'member sends message', versions: ALL, event: (v) => msg(v, BOB), allowed: true },
    { name: 'stranger cannot send', versions: ALL, event: (v) => msg(v, CAROL), allowed: false },
    { name: 'left user cannot send', versions: ALL, event: (v) => msg(v, BOB), state: left, allowed: false },
    { name: 'invited user cannot send', versions: ALL, event: (v) => msg(v, CAROL), state: left, allowed: false },
    { name: 'user cannot set name (state_default 50)', versions: ALL, event: (v) => state(v, BOB, 'm.room.name', '', { name: 'x' }), allowed: false },
    { name: 'mod sets name', versions: ALL, event: (v) => state(v, MOD, 'm.room.name', '', { name: 'x' }), allowed: true },
    {
      name: 'events override lowers requirement',
      versions: ALL,
      event: (v) => state(v, BOB, 'm.room.topic', '', { topic: 'x' }),
      state: (v) => room(v, { pl: { users: { [ALICE]: 100 }, events: { 'm.room.topic': 0 } } }),
      allowed: true,
    },
    {
      name: 'events_default raises message requirement',
      versions: ALL,
      event: (v) => msg(v, BOB),
      state: (v) => room(v, { pl: { users: { [ALICE]: 100 }, events_default: 10 } }),
      allowed: false,
    },
    {
      // Synapse and Dendrite: state events need 50 even without a power_levels event (the spec text says 0).
      name: 'no power_levels: state_default is 50, a member who is not the creator may not send state',
      versions: ALL,
      event: (v) => state(v, BOB, 'm.room.name', '', { name: 'x' }),
      state: (v) => room(v, { pl: null }),
      allowed: false,
    },
    {
      name: 'state_key of another user',
      versions: ALL,
      event: (v) => state(v, BOB, 'x.custom', ALICE, {}),
      state: (v) => room(v, { pl: { users: { [ALICE]: 100 }, state_default: 0 } }),
      allowed: false,
    },
    {
      name: 'own user state_key',
      versions: ALL,
      event: (v) => state(v, BOB, 'x.custom', BOB, {}),
      state: (v) => room(v, { pl: { users: { [ALICE]: 100 }, state_default: 0 } }),
      allowed: true,
    },
    {
      name: 'm.federate false refuses other servers',
      versions: ALL,
      event: (v) => msg(v, BOB),
      state: (v) => room(v, { createContent: { creator: ALICE, 'm.federate': false } }),
      allowed: false,
    },
    {
      name: 'm.federate false allows creator server',
      versions: ALL,
      event: (v) => msg(v, MOD),
      state: (v) => room(v, { createContent: { creator: ALICE, 'm.federate': false } }),
      allowed: true,
    },
    { name: 'aliases: stranger for own server (special case)', versions: before(6), event: (v) => state(v, CAROL, 'm.room.aliases', 'c.example', { aliases: [] }), allowed: true },
    { name: 'aliases: wrong server', versions: before(6), event: (v) => state(v, MOD, 'm.room.aliases', 'c.example', { aliases: [] }), allowed: false },
    { name: 'aliases: ordinary state from v6 (stranger)', versions: from(6), event: (v) => state(v, CAROL, 'm.room.aliases', 'c.example', { aliases: [] }), allowed: false },
    { name: 'aliases: ordinary state from v6 (user)', versions: from(6), event: (v) => state(v, BOB, 'm.room.aliases', 'b.example', { aliases: [] }), allowed: false },
    { name: 'aliases: ordinary state from v6 (mod)', versions: from(6), event: (v) => state(v, MOD, 'm.room.aliases', 'a.example', { aliases: [] }), allowed: true },
  ]);
});

describe('redactions', () => {
  const redaction = (sender: string, target: string) => (v: RoomVersion) =>
    v.updatedRedactionRules
      ? pdu(v, { type: 'm.room.redaction', sender, content: { redacts: target } })
      : pdu(v, { type: 'm.room.redaction', sender, content: {}, redacts: target });
  runCases([
    { name: 'v1/2: user redacts event from another server', versions: ['1', '2'], event: redaction(BOB, '$x:a.example'), allowed: false },
    { name: 'v1/2: user redacts event of own server', versions: ['1', '2'], event: redaction(BOB, '$x:b.example'), allowed: true },
    { name: 'v1/2: mod redacts anything', versions: ['1', '2'], event: redaction(MOD, '$x:b.example'), allowed: true },
    { name: 'v3+: redact level not part of auth', versions: from(3), event: redaction(BOB, '$x:a.example'), allowed: true },
    {
      name: 'v3+: events level for m.room.redaction applies',
      versions: from(3),
      event: redaction(BOB, '$x:b.example'),
      state: (v) => room(v, { pl: { users: { [ALICE]: 100 }, events: { 'm.room.redaction': 50 } } }),
      allowed: false,
    },
    { name: 'stranger cannot redact', versions: ALL, event: redaction(CAROL, '$x:c.example'), allowed: false },
  ]);
});

describe('power levels changes', () => {
  const base = { users: { [ALICE]: 100, [MOD]: 50, [MOD2]: 50 }, users_default: 0, ban: 50, kick: 50, redact: 50, invite: 0, state_default: 50, events_default: 0, events: { 'm.room.power_levels': 100, 'm.room.name': 50 }, notifications: { room: 50 } };
  const withBase = (extra: Record<string, unknown> = {}) => (v: RoomVersion) => room(v, { pl: { ...base, ...extra } });
  const plEvent = (sender: string, content: Record<string, unknown>) => (v: RoomVersion) =>
    state(v, sender, 'm.room.power_levels', '', content);
  const modCan = withBase({ events: { ...base.events, 'm.room.power_levels': 50 } });
  const modEvents = { ...base.events, 'm.room.power_levels': 50 };
  runCases([
    { name: 'admin promotes user', versions: ALL, event: plEvent(ALICE, { ...base, users: { ...base.users, [BOB]: 50 } }), state: withBase(), allowed: true },
    { name: 'mod below required level for power_levels', versions: ALL, event: plEvent(MOD, { ...base, users: { ...base.users, [BOB]: 10 } }), state: withBase(), allowed: false },
    { name: 'mod raises user to own level', versions: ALL, event: plEvent(MOD, { ...base, events: modEvents, users: { ...base.users, [BOB]: 50 } }), state: modCan, allowed: true },
    { name: 'mod raises user above own level', versions: ALL, event: plEvent(MOD, { ...base, events: modEvents, users: { ...base.users, [BOB]: 51 } }), state: modCan, allowed: false },
    { name: 'mod raises self', versions: ALL, event: plEvent(MOD, { ...base, events: modEvents, users: { ...base.users, [MOD]: 60 } }), state: modCan, allowed: false },
    { name: 'mod demotes self', versions: ALL, event: plEvent(MOD, { ...base, events: modEvents, users: { [ALICE]: 100, [MOD2]: 50 } }), state: modCan, allowed: true },
    { name: 'mod demotes equal mod', versions: ALL, event: plEvent(MOD, { ...base, events: modEvents, users: { ...base.users, [MOD2]: 0 } }), state: modCan, allowed: false },
    { name: 'mod removes equal mod', versions: ALL, event: plEvent(MOD, { ...base, events: modEvents, users: { [ALICE]: 100, [MOD]: 50 } }), state: modCan, allowed: false },
    { name: 'mod changes admin', versions: ALL, event: plEvent(MOD, { ...base, events: modEvents, users: { ...base.users, [ALICE]: 50 } }), state: modCan, allowed: false },
    { name: 'mod lowers ban level', versions: ALL, event: plEvent(MOD, { ...base, events: modEvents, ban: 40 }), state: modCan, allowed: true },
    { name: 'mod raises state_default above own', versions: ALL, event: plEvent(MOD, { ...base, events: modEvents, state_default: 60 }), state: modCan, allowed: false },
    { name: 'mod changes kick currently above own', versions: ALL, event: plEvent(MOD, { ...base, events: modEvents, kick: 50 }), state: (v) => room(v, { pl: { ...base, events: modEvents, kick: 70 } }), allowed: false },
    { name: 'mod removes redact currently above own', versions: ALL, event: plEvent(MOD, (({ redact: _r, ...r }) => ({ ...r, events: modEvents }))(base)), state: (v) => room(v, { pl: { ...base, events: modEvents, redact: 70 } }), allowed: false },
    { name: 'mod adds event level above own', versions: ALL, event: plEvent(MOD, { ...base, events: { ...modEvents, 'm.room.topic': 60 } }), state: modCan, allowed: false },
    { name: 'mod adds event level at own', versions: ALL, event: plEvent(MOD, { ...base, events: { ...modEvents, 'm.room.topic': 50 } }), state: modCan, allowed: true },
    { name: 'mod changes event level above own', versions: ALL, event: plEvent(MOD, { ...base, events: { ...modEvents, 'm.room.name': 0 } }), state: (v) => room(v, { pl: { ...base, events: { ...modEvents, 'm.room.name': 75 } } }), allowed: false },
    { name: 'notifications over own level: guarded from v6', versions: from(6), event: plEvent(MOD, { ...base, events: modEvents, notifications: { room: 0 } }), state: (v) => room(v, { pl: { ...base, events: modEvents, notifications: { room: 80 } } }), allowed: false },
    { name: 'notifications over own level: ignored before v6', versions: before(6), event: plEvent(MOD, { ...base, events: modEvents, notifications: { room: 0 } }), state: (v) => room(v, { pl: { ...base, events: modEvents, notifications: { room: 80 } } }), allowed: true },
    { name: 'user allowed by events level resends unchanged', versions: ALL, event: plEvent(BOB, { ...base, events: { 'm.room.power_levels': 0 } }), state: (v) => room(v, { pl: { ...base, events: { 'm.room.power_levels': 0 } } }), allowed: true },
    { name: 'user allowed by events level cannot touch higher entries', versions: ALL, event: plEvent(BOB, { ...base, events: { 'm.room.power_levels': 0 }, kick: 0 }), state: (v) => room(v, { pl: { ...base, events: { 'm.room.power_levels': 0 } } }), allowed: false },
    { name: 'invalid user id key', versions: ALL, event: plEvent(ALICE, { ...base, users: { bob: 10 } }), state: withBase(), allowed: false },
    { name: 'users not an object', versions: ALL, event: plEvent(ALICE, { ...base, users: [] }), state: withBase(), allowed: false },
    { name: 'string levels accepted before v10', versions: before(10), event: plEvent(ALICE, { ...base, ban: '60', users: { ...base.users, [BOB]: ' +10 ' } }), state: withBase(), allowed: true },
    { name: 'string scalar level refused from v10', versions: from(10), event: plEvent(ALICE, { ...base, ban: '60' }), state: withBase(), allowed: false },
    { name: 'string user level refused from v10', versions: from(10), event: plEvent(ALICE, { ...base, users: { ...base.users, [BOB]: '10' } }), state: withBase(), allowed: false },
    { name: 'string event level refused from v10', versions: from(10), event: plEvent(ALICE, { ...base, events: { 'm.room.name': '50' } }), state: withBase(), allowed: false },
    { name: 'non-integer user level refused', versions: ALL, event: plEvent(ALICE, { ...base, users: { ...base.users, [BOB]: 'ten' } }), state: withBase(), allowed: false },
    { name: 'notifications must be integers from v10', versions: from(10), event: plEvent(ALICE, { ...base, notifications: 5 }), state: withBase(), allowed: false },
    { name: 'first power levels by creator', versions: ALL, event: plEvent(ALICE, { users: { [ALICE]: 100, [BOB]: 100 } }), state: (v) => room(v, { pl: null }), allowed: true },
  ]);

  it('stringy old levels compare numerically before v10', () => {
    const v = rv('9');
    // The sender's own level comes from a string ("50") in the current event.
    const s = room(v, { pl: { users: { [ALICE]: 100, [MOD]: '50' }, events: { 'm.room.power_levels': '50' } } });
    expect(userPowerLevel(s, MOD, v)).toBe(50);
    expect(check(v, state(v, MOD, 'm.room.power_levels', '', { users: { [ALICE]: 100, [MOD]: 50, [BOB]: 50 }, events: { 'm.room.power_levels': 50 } }), s)).toBe(true);
    expect(check(v, state(v, MOD, 'm.room.power_levels', '', { users: { [ALICE]: 100, [MOD]: 50, [BOB]: 51 }, events: { 'm.room.power_levels': 50 } }), s)).toBe(false);
  });
});

describe('power level helpers', () => {
  it('defaults without a power_levels event', () => {
    for (const ver of ['10', '11']) {
      const v = rv(ver);
      const s = room(v, { pl: null, createContent: { creator: BOB } });
      // v10 reads content.creator; v11 the create event's sender.
      expect(userPowerLevel(s, BOB, v)).toBe(ver === '10' ? 100 : 0);
      expect(userPowerLevel(s, ALICE, v)).toBe(ver === '10' ? 0 : 100);
      expect(requiredPowerLevel(s, 'm.room.name', true)).toBe(50);
      expect(requiredPowerLevel(s, 'm.room.message', false)).toBe(0);
      expect(powerLevelFor(s, 'invite')).toBe(0);
      expect(powerLevelFor(s, 'kick')).toBe(50);
      expect(powerLevelFor(s, 'ban')).toBe(50);
      expect(powerLevelFor(s, 'redact')).toBe(50);
    }
  });

  it('defaults and overrides with a power_levels event', () => {
    const v = rv('10');
    const s = room(v, { pl: { users: { [MOD]: 50 }, users_default: 5, events: { 'm.room.name': 20 }, kick: 40 } });
    expect(userPowerLevel(s, MOD, v)).toBe(50);
    expect(userPowerLevel(s, ALICE, v)).toBe(5); // creator has no special level once power_levels exists
    expect(requiredPowerLevel(s, 'm.room.name', true)).toBe(20);
    expect(requiredPowerLevel(s, 'm.room.topic', true)).toBe(50);
    expect(requiredPowerLevel(s, 'm.room.message', false)).toBe(0);
    expect(powerLevelFor(s, 'kick')).toBe(40);
    expect(powerLevelFor(s, 'invite')).toBe(0);
    const old = rv('5');
    const s5 = room(old, { pl: { users: { [MOD]: '50', [BOB]: 30.7 }, ban: ' 70 ' } });
    expect(userPowerLevel(s5, MOD, old)).toBe(50);
    expect(userPowerLevel(s5, BOB, old)).toBe(30);
    expect(powerLevelFor(s5, 'ban', old)).toBe(70);
  });
});
