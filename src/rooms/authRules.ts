/**
 * Authorization rules for room versions 1–12 (spec: room versions, "Authorization rules").
 *
 * `checkAuth(event, authState, version)` applies the rules with `authState`
 * holding the event's auth events keyed by `stateMapKey(type, state_key)`.
 * The same function serves the "against the state before the event" and the
 * soft-fail checks: pass the state selected with `authTypesForEvent`.
 *
 * What is NOT checked here because it needs I/O or history (the inbound
 * pipeline does it before calling `checkAuth`):
 * - signatures on the event itself, including the one required from the
 *   server of `join_authorised_via_users_server` (rule 4.2) unless the caller
 *   passes `opts.isSignedBy`;
 * - duplicate (type, state_key) entries in `auth_events` (rule 2.1): a
 *   `StateMap` cannot hold duplicates, use `buildAuthState` to detect them;
 * - auth events that were themselves rejected (rule 2.3).
 *
 * Room version 12 (`version.roomIdFromCreateEvent`): the create event is never
 * in `auth_events` (the room id implies it) and `authTypesForEvent` does not
 * select it, but `checkAuth` still needs it: put the room's create event into
 * `authState` under `(m.room.create, "")` as well (`withImpliedCreate` does).
 * Whether it was itself accepted (rule 2) is the caller's knowledge.
 */
import { verifyJsonSignature } from '../crypto/signing.js';
import { stateMapKey, type Pdu, type ReadonlyStateMap, type StateMap } from '../types/pdu.js';
import { authEventIds, createEventIdOfRoom, eventIdOf, prevEventIds, redactsOf, serverNameOf } from './eventFormat.js';
import { getKnownRoomVersion, type RoomVersion } from './roomVersions.js';

export type AuthResult = { allowed: true } | { allowed: false; reason: string };

export interface CheckAuthOptions {
  /**
   * Whether `event` carries a valid signature from `serverName`. When given,
   * rule 4.2 (join_authorised_via_users_server must have signed) is enforced
   * here; otherwise the signature step of the pipeline must do it.
   */
  isSignedBy?: (event: Pdu, serverName: string) => boolean;
}

const ALLOW: AuthResult = { allowed: true };
const deny = (reason: string): AuthResult => ({ allowed: false, reason });

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const USER_ID_RE = /^@[^:]+:.+$/;
export function isValidUserId(s: unknown): s is string {
  return typeof s === 'string' && USER_ID_RE.test(s);
}

// ---------------------------------------------------------------------------
// Auth events selection

/**
 * The (type, state_key) pairs whose current state events go into
 * `auth_events` (server-server spec "Auth events selection").
 */
export function authTypesForEvent(
  type: string,
  stateKey: string | undefined,
  content: Record<string, unknown>,
  sender: string,
  version: RoomVersion,
): Array<[string, string]> {
  if (type === 'm.room.create') return [];
  const out: Array<[string, string]> = [
    // v12: the room id implies the create event, which must not be selected.
    ...(version.roomIdFromCreateEvent ? [] : [['m.room.create', ''] as [string, string]]),
    ['m.room.power_levels', ''],
    ['m.room.member', sender],
  ];
  if (type === 'm.room.member' && typeof stateKey === 'string') {
    const membership = content.membership;
    out.push(['m.room.member', stateKey]);
    if (membership === 'join' || membership === 'invite' || membership === 'knock') {
      out.push(['m.room.join_rules', '']);
    }
    if (membership === 'invite' && isPlainObject(content.third_party_invite)) {
      const signed = content.third_party_invite.signed;
      if (isPlainObject(signed) && typeof signed.token === 'string') {
        out.push(['m.room.third_party_invite', signed.token]);
      }
    }
    if (
      membership === 'join' &&
      version.restrictedJoinRule &&
      typeof content.join_authorised_via_users_server === 'string'
    ) {
      out.push(['m.room.member', content.join_authorised_via_users_server]);
    }
  }
  const seen = new Set<string>();
  return out.filter(([t, k]) => {
    const key = stateMapKey(t, k);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * For versions whose room id implies the create event (v12): `authState` with
 * `create` added under `(m.room.create, "")`. Otherwise `authState` unchanged.
 */
export function withImpliedCreate(authState: ReadonlyStateMap, create: Pdu | undefined, version: RoomVersion): ReadonlyStateMap {
  if (!version.roomIdFromCreateEvent || !create) return authState;
  const key = stateMapKey('m.room.create', '');
  if (authState.get(key) === create) return authState;
  const out: StateMap = new Map(authState);
  out.set(key, create);
  return out;
}

/**
 * Turn the fetched auth events of `event` into a StateMap, rejecting
 * duplicate (type, state_key) pairs (rule 2.1) and non-state entries.
 */
export function buildAuthState(authEvents: readonly Pdu[]): { ok: true; state: StateMap } | { ok: false; reason: string } {
  const state: StateMap = new Map();
  for (const ev of authEvents) {
    if (typeof ev.state_key !== 'string') return { ok: false, reason: 'auth event is not a state event' };
    const key = stateMapKey(ev.type, ev.state_key);
    if (state.has(key)) return { ok: false, reason: `duplicate auth event for (${ev.type}, ${ev.state_key})` };
    state.set(key, ev);
  }
  return { ok: true, state };
}

// ---------------------------------------------------------------------------
// Power levels

/**
 * Parse a power-level value. Integers always; before v10 also integer strings
 * (" +100 ", "007") and floats (truncated). Returns undefined when invalid.
 */
export function parsePowerLevelValue(v: unknown, version?: RoomVersion): number | undefined {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return undefined;
    if (Number.isInteger(v)) return v;
    return version?.integerPowerLevels ? undefined : Math.trunc(v);
  }
  if (typeof v === 'string' && !version?.integerPowerLevels) {
    if (!/^\s*[+-]?\d+\s*$/.test(v)) return undefined;
    const n = Number.parseInt(v.trim(), 10);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

function getState(state: ReadonlyStateMap, type: string, stateKey = ''): Pdu | undefined {
  return state.get(stateMapKey(type, stateKey));
}

function plContent(state: ReadonlyStateMap): Record<string, unknown> | undefined {
  const pl = getState(state, 'm.room.power_levels');
  return pl && isPlainObject(pl.content) ? pl.content : undefined;
}

function levelOr(v: unknown, dflt: number, version?: RoomVersion): number {
  return parsePowerLevelValue(v, version) ?? dflt;
}

/** The room creator: `content.creator` before v11, the create event's sender from v11. */
export function roomCreator(state: ReadonlyStateMap, version: RoomVersion): string | undefined {
  const create = getState(state, 'm.room.create');
  if (!create) return undefined;
  if (version.implicitRoomCreator) return create.sender;
  const c = create.content?.creator;
  return typeof c === 'string' ? c : undefined;
}

/**
 * The room creators. v12 (`infiniteCreatorPower`): the create event's sender
 * plus the valid user ids in `content.additional_creators`; before: the single
 * `roomCreator`, if any.
 */
export function roomCreators(state: ReadonlyStateMap, version: RoomVersion): Set<string> {
  const out = new Set<string>();
  if (version.infiniteCreatorPower) {
    const create = getState(state, 'm.room.create');
    if (!create) return out;
    if (typeof create.sender === 'string') out.add(create.sender);
    const extra = create.content?.additional_creators;
    if (Array.isArray(extra)) for (const u of extra as unknown[]) if (isValidUserId(u)) out.add(u);
    return out;
  }
  const c = roomCreator(state, version);
  if (c !== undefined) out.add(c);
  return out;
}

/** The power level of room creators in versions with `infiniteCreatorPower` (v12). */
export const CREATOR_POWER_LEVEL = Number.POSITIVE_INFINITY;

/**
 * A user's power level: `users[user]`, else `users_default` (default 0).
 * Without a power_levels event the creator has 100 and everyone else 0.
 * v12: every room creator has `CREATOR_POWER_LEVEL` (infinity), whatever the
 * power levels say.
 */
export function userPowerLevel(state: ReadonlyStateMap, userId: string, version: RoomVersion): number {
  if (version.infiniteCreatorPower && roomCreators(state, version).has(userId)) return CREATOR_POWER_LEVEL;
  const pl = plContent(state);
  if (pl) {
    const users = isPlainObject(pl.users) ? pl.users : {};
    if (Object.hasOwn(users, userId)) {
      const v = parsePowerLevelValue(users[userId], version);
      if (v !== undefined) return v;
    }
    return levelOr(pl.users_default, 0, version);
  }
  return roomCreator(state, version) === userId ? 100 : 0;
}

/**
 * Power level required to send an event of `eventType`: `events[type]`, else
 * `state_default` (50) for state events or `events_default` (0) for others.
 * Without a power_levels event state events still need 50, as Synapse and Dendrite enforce (the spec
 * text says 0, which would let any member of such a room set the first power levels over federation).
 */
export function requiredPowerLevel(state: ReadonlyStateMap, eventType: string, isState: boolean, version?: RoomVersion): number {
  const pl = plContent(state);
  if (!pl) return isState ? 50 : 0;
  const events = isPlainObject(pl.events) ? pl.events : {};
  if (Object.hasOwn(events, eventType)) {
    const v = parsePowerLevelValue(events[eventType], version);
    if (v !== undefined) return v;
  }
  return isState ? levelOr(pl.state_default, 50, version) : levelOr(pl.events_default, 0, version);
}

const ACTION_DEFAULTS = { invite: 0, kick: 50, ban: 50, redact: 50 } as const;

/** Level needed to invite (default 0), kick/ban/redact (default 50). */
export function powerLevelFor(state: ReadonlyStateMap, action: 'invite' | 'kick' | 'ban' | 'redact', version?: RoomVersion): number {
  const pl = plContent(state);
  return levelOr(pl?.[action], ACTION_DEFAULTS[action], version);
}

/** Level needed for a notification type such as `room` (default 50). */
export function notificationPowerLevel(state: ReadonlyStateMap, key: string, version?: RoomVersion): number {
  const pl = plContent(state);
  const n = pl && isPlainObject(pl.notifications) ? pl.notifications : {};
  return levelOr(Object.hasOwn(n, key) ? n[key] : undefined, 50, version);
}

// ---------------------------------------------------------------------------
// Membership helpers

function membershipOf(state: ReadonlyStateMap, userId: string): string | undefined {
  const ev = getState(state, 'm.room.member', userId);
  const m = ev?.content?.membership;
  return typeof m === 'string' ? m : undefined;
}

function joinRuleOf(state: ReadonlyStateMap): string {
  const jr = getState(state, 'm.room.join_rules')?.content?.join_rule;
  // With no join_rules event nobody can join uninvited (Synapse defaults to "invite").
  return typeof jr === 'string' ? jr : 'invite';
}

// ---------------------------------------------------------------------------
// The rules

/** Event ids of create events, computed once per object (v12 compares room ids with them). */
const createIdCache = new WeakMap<Pdu, string>();
function createEventId(create: Pdu, version: RoomVersion): string | undefined {
  let id = createIdCache.get(create);
  if (id === undefined) {
    try {
      id = eventIdOf(create, version);
    } catch {
      return undefined;
    }
    createIdCache.set(create, id);
  }
  return id;
}

export function checkAuth(event: Pdu, authState: ReadonlyStateMap, version: RoomVersion, opts: CheckAuthOptions = {}): AuthResult {
  try {
    return checkAuthInner(event, authState, version, opts);
  } catch (e) {
    // Malformed events must be rejected, never crash the pipeline.
    return deny(`malformed event: ${(e as Error).message}`);
  }
}

function checkAuthInner(event: Pdu, authState: ReadonlyStateMap, version: RoomVersion, opts: CheckAuthOptions): AuthResult {
  const hashedRoomCreate = version.roomIdFromCreateEvent && event.type === 'm.room.create';
  if (
    typeof event.sender !== 'string' ||
    typeof event.type !== 'string' ||
    (!hashedRoomCreate && typeof event.room_id !== 'string')
  ) {
    return deny('event lacks sender, type or room_id');
  }
  const content = isPlainObject(event.content) ? event.content : {};
  const senderDomain = serverNameOf(event.sender);

  // 1. m.room.create
  if (event.type === 'm.room.create') {
    if (Array.isArray(event.prev_events) && event.prev_events.length > 0) {
      return deny('create event has prev_events');
    }
    if (version.roomIdFromCreateEvent) {
      // v12 1.2: the room id is derived from the create event, which has none.
      if (event.room_id !== undefined) return deny('create event must not have a room_id in this room version');
    } else if (!senderDomain || serverNameOf(event.room_id) !== senderDomain) {
      return deny('create event: room_id domain does not match sender domain');
    }
    if (content.room_version !== undefined) {
      if (typeof content.room_version !== 'string' || !getKnownRoomVersion(content.room_version)) {
        return deny('create event: unknown room_version');
      }
    }
    // v12 1.4
    if (version.infiniteCreatorPower && content.additional_creators !== undefined) {
      const extra = content.additional_creators;
      if (!Array.isArray(extra) || !extra.every((u) => isValidUserId(u))) {
        return deny('create event: additional_creators must be an array of user ids');
      }
    }
    if (!version.implicitRoomCreator && content.creator === undefined) {
      return deny('create event has no creator');
    }
    return ALLOW;
  }

  // 2. auth events
  const create = getState(authState, 'm.room.create');
  if (!create) return deny('no m.room.create among auth events');
  const createKey = stateMapKey('m.room.create', '');
  if (version.roomIdFromCreateEvent) {
    // v12 rule 2: the room id is the create event's id with `!` for `$`.
    const impliedCreateId = createEventIdOfRoom(event.room_id, version);
    if (impliedCreateId === undefined || createEventId(create, version) !== impliedCreateId) {
      return deny("room_id is not the id of the room's create event");
    }
    // v12 rule 3.2: the create event must not be selected as an auth event.
    if (authEventIds(event).includes(impliedCreateId)) return deny('create event must not be listed in auth_events');
  }
  const allowedKeys = new Set(
    authTypesForEvent(event.type, event.state_key, content, event.sender, version).map(([t, k]) => stateMapKey(t, k)),
  );
  for (const [key, ev] of authState) {
    // v12: the create entry is the implied one checked above; it has no room_id.
    if (version.roomIdFromCreateEvent && key === createKey) continue;
    if (!allowedKeys.has(key)) return deny(`unexpected auth event (${ev.type}, ${ev.state_key})`);
    if (ev.room_id !== event.room_id) return deny('auth event from another room');
  }

  // 3. m.federate
  if (create.content?.['m.federate'] === false && serverNameOf(create.sender) !== senderDomain) {
    return deny('room is not federated');
  }

  // 4. m.room.aliases (v1–5)
  if (version.specialCaseAliasesAuth && event.type === 'm.room.aliases') {
    if (typeof event.state_key !== 'string') return deny('aliases event has no state_key');
    if (event.state_key !== senderDomain) return deny("aliases state_key does not match sender's domain");
    return ALLOW;
  }

  // 5. m.room.member
  if (event.type === 'm.room.member') return checkMembership(event, content, authState, version, opts);

  // 6. sender must be joined
  if (membershipOf(authState, event.sender) !== 'join') return deny('sender is not joined to the room');

  const senderLevel = userPowerLevel(authState, event.sender, version);

  // 7. m.room.third_party_invite
  if (event.type === 'm.room.third_party_invite') {
    return senderLevel >= powerLevelFor(authState, 'invite', version)
      ? ALLOW
      : deny('sender may not send third-party invites');
  }

  // 8. required power level
  const isState = typeof event.state_key === 'string';
  if (requiredPowerLevel(authState, event.type, isState, version) > senderLevel) {
    return deny(`sender's power level is too low to send ${event.type}`);
  }

  // 9. user-owned state keys
  if (isState && event.state_key!.startsWith('@') && event.state_key !== event.sender) {
    return deny('state_key belongs to another user');
  }

  // 10. m.room.power_levels
  if (event.type === 'm.room.power_levels') {
    return checkPowerLevels(event, content, authState, version, senderLevel);
  }

  // 11. m.room.redaction (v1–2 only)
  if (version.redactionAuthRule && event.type === 'm.room.redaction') {
    if (senderLevel >= powerLevelFor(authState, 'redact', version)) return ALLOW;
    const target = redactsOf(event, version);
    const ownDomain = typeof event.event_id === 'string' ? serverNameOf(event.event_id) : undefined;
    if (target !== undefined && ownDomain !== undefined && serverNameOf(target) === ownDomain) return ALLOW;
    return deny('sender may not redact this event');
  }

  return ALLOW;
}

function checkMembership(
  event: Pdu,
  content: Record<string, unknown>,
  state: ReadonlyStateMap,
  version: RoomVersion,
  opts: CheckAuthOptions,
): AuthResult {
  const target = event.state_key;
  const membership = content.membership;
  if (typeof target !== 'string' || typeof membership !== 'string') {
    return deny('member event lacks state_key or membership');
  }

  // 4.2 (v8+): the authorising server must have signed the join.
  const authoriser = content.join_authorised_via_users_server;
  if (version.restrictedJoinRule && authoriser !== undefined && opts.isSignedBy) {
    const server = typeof authoriser === 'string' ? serverNameOf(authoriser) : undefined;
    if (!server || !opts.isSignedBy(event, server)) {
      return deny('join not signed by the server of join_authorised_via_users_server');
    }
  }

  const sender = event.sender;
  const senderMembership = membershipOf(state, sender);
  const targetMembership = membershipOf(state, target);
  const senderLevel = userPowerLevel(state, sender, version);
  const targetLevel = userPowerLevel(state, target, version);

  switch (membership) {
    case 'join': {
      // The creator's own first join, right after the create event.
      const create = getState(state, 'm.room.create')!;
      const prevs = prevEventIds(event);
      if (prevs.length === 1 && target === roomCreator(state, version)) {
        let createId: string | undefined;
        try {
          createId = eventIdOf(create, version);
        } catch {
          createId = undefined;
        }
        if (createId !== undefined && prevs[0] === createId) return ALLOW;
      }
      if (sender !== target) return deny('cannot make another user join');
      if (senderMembership === 'ban') return deny('user is banned from the room');
      const joinRule = joinRuleOf(state);
      if (joinRule === 'invite' || (version.knockJoinRule && joinRule === 'knock')) {
        return senderMembership === 'invite' || senderMembership === 'join'
          ? ALLOW
          : deny('user is not invited to the room');
      }
      if (
        (version.restrictedJoinRule && joinRule === 'restricted') ||
        (version.knockRestrictedJoinRule && joinRule === 'knock_restricted')
      ) {
        if (senderMembership === 'join' || senderMembership === 'invite') return ALLOW;
        if (!isValidUserId(authoriser)) return deny('restricted join without a valid join_authorised_via_users_server');
        if (membershipOf(state, authoriser) !== 'join') return deny('authorising user is not joined to the room');
        if (userPowerLevel(state, authoriser, version) < powerLevelFor(state, 'invite', version)) {
          return deny('authorising user may not invite');
        }
        return ALLOW;
      }
      if (joinRule === 'public') return ALLOW;
      return deny(`join rule ${joinRule} does not allow joining`);
    }

    case 'invite': {
      if (Object.hasOwn(content, 'third_party_invite')) {
        return checkThirdPartyInvite(event, content, state, targetMembership);
      }
      if (senderMembership !== 'join') return deny('inviter is not joined to the room');
      if (targetMembership === 'join' || targetMembership === 'ban') {
        return deny(`invitee is already ${targetMembership === 'join' ? 'joined' : 'banned'}`);
      }
      return senderLevel >= powerLevelFor(state, 'invite', version) ? ALLOW : deny('sender may not invite');
    }

    case 'leave': {
      if (sender === target) {
        const ok =
          senderMembership === 'invite' ||
          senderMembership === 'join' ||
          (version.knockJoinRule && senderMembership === 'knock');
        return ok ? ALLOW : deny('user cannot leave: not invited, joined or knocking');
      }
      if (senderMembership !== 'join') return deny('sender is not joined to the room');
      if (targetMembership === 'ban' && senderLevel < powerLevelFor(state, 'ban', version)) {
        return deny('sender may not unban');
      }
      if (senderLevel >= powerLevelFor(state, 'kick', version) && targetLevel < senderLevel) return ALLOW;
      return deny('sender may not kick this user');
    }

    case 'ban': {
      if (senderMembership !== 'join') return deny('sender is not joined to the room');
      if (senderLevel >= powerLevelFor(state, 'ban', version) && targetLevel < senderLevel) return ALLOW;
      return deny('sender may not ban this user');
    }

    case 'knock': {
      if (!version.knockJoinRule) return deny('knocking is not supported in this room version');
      const joinRule = joinRuleOf(state);
      if (!(joinRule === 'knock' || (version.knockRestrictedJoinRule && joinRule === 'knock_restricted'))) {
        return deny('room does not allow knocking');
      }
      if (sender !== target) return deny('cannot knock on behalf of another user');
      if (senderMembership === 'ban' || senderMembership === 'invite' || senderMembership === 'join') {
        return deny(`cannot knock while ${senderMembership}`);
      }
      return ALLOW;
    }

    default:
      return deny(`unknown membership ${membership}`);
  }
}

/**
 * Rule 4.4.1: invites backed by a third-party invite. The signature check is
 * complete: `signed` must carry an ed25519 signature (from any entity) that
 * verifies with `public_key` or one of `public_keys[].public_key` of the
 * matching m.room.third_party_invite event. Key validity URLs are not consulted.
 */
function checkThirdPartyInvite(
  event: Pdu,
  content: Record<string, unknown>,
  state: ReadonlyStateMap,
  targetMembership: string | undefined,
): AuthResult {
  if (targetMembership === 'ban') return deny('invitee is banned');
  const tpi = content.third_party_invite;
  if (!isPlainObject(tpi) || !isPlainObject(tpi.signed)) return deny('third_party_invite has no signed');
  const signed = tpi.signed;
  if (typeof signed.mxid !== 'string' || typeof signed.token !== 'string') {
    return deny('third_party_invite.signed lacks mxid or token');
  }
  if (signed.mxid !== event.state_key) return deny('third_party_invite mxid does not match state_key');
  const invite = getState(state, 'm.room.third_party_invite', signed.token);
  if (!invite) return deny('no matching m.room.third_party_invite');
  if (invite.sender !== event.sender) return deny('sender did not send the third-party invite');

  const keys: string[] = [];
  const ic = isPlainObject(invite.content) ? invite.content : {};
  if (typeof ic.public_key === 'string') keys.push(ic.public_key);
  if (Array.isArray(ic.public_keys)) {
    for (const k of ic.public_keys as unknown[]) {
      if (isPlainObject(k) && typeof k.public_key === 'string') keys.push(k.public_key);
    }
  }
  const sigs = isPlainObject(signed.signatures) ? signed.signatures : {};
  for (const [entity, byKey] of Object.entries(sigs)) {
    if (!isPlainObject(byKey)) continue;
    for (const keyId of Object.keys(byKey)) {
      if (!keyId.startsWith('ed25519:')) continue;
      for (const pk of keys) {
        if (verifyJsonSignature(signed, entity, keyId, pk)) return ALLOW;
      }
    }
  }
  return deny('third_party_invite signature does not match');
}

const PL_SCALARS = ['users_default', 'events_default', 'state_default', 'ban', 'redact', 'kick', 'invite'] as const;

function checkPowerLevels(
  event: Pdu,
  content: Record<string, unknown>,
  state: ReadonlyStateMap,
  version: RoomVersion,
  senderLevel: number,
): AuthResult {
  // 9.1–9.3: shape of the new content.
  if (version.integerPowerLevels) {
    for (const k of PL_SCALARS) {
      if (Object.hasOwn(content, k) && !Number.isInteger(content[k])) return deny(`power_levels.${k} is not an integer`);
    }
    for (const k of ['events', 'notifications'] as const) {
      if (!Object.hasOwn(content, k)) continue;
      const obj = content[k];
      if (!isPlainObject(obj) || !Object.values(obj).every((v) => Number.isInteger(v))) {
        return deny(`power_levels.${k} must map to integers`);
      }
    }
  }
  if (Object.hasOwn(content, 'users')) {
    const users = content.users;
    if (!isPlainObject(users)) return deny('power_levels.users is not an object');
    for (const [u, v] of Object.entries(users)) {
      if (!isValidUserId(u)) return deny(`power_levels.users has invalid user id ${u}`);
      const ok = version.integerPowerLevels ? Number.isInteger(v) : parsePowerLevelValue(v, version) !== undefined;
      if (!ok) return deny(`power_levels.users[${u}] is not an integer`);
    }
  }

  // v12 10.4: creators can't be listed (their level is infinite and fixed).
  if (version.infiniteCreatorPower && isPlainObject(content.users)) {
    for (const creator of roomCreators(state, version)) {
      if (Object.hasOwn(content.users, creator)) return deny(`power_levels.users must not list the room creator ${creator}`);
    }
  }

  // 9.4: first power levels event.
  const current = getState(state, 'm.room.power_levels');
  if (!current) return ALLOW;
  const oldContent = isPlainObject(current.content) ? current.content : {};
  const num = (v: unknown): number | undefined => parsePowerLevelValue(v, version);

  // 9.5: scalar levels.
  for (const k of PL_SCALARS) {
    const had = Object.hasOwn(oldContent, k);
    const has = Object.hasOwn(content, k);
    const oldV = had ? num(oldContent[k]) : undefined;
    const newV = has ? num(content[k]) : undefined;
    if (had === has && oldV === newV) continue;
    if (oldV !== undefined && oldV > senderLevel) return deny(`cannot change ${k} from a level above your own`);
    if (newV !== undefined && newV > senderLevel) return deny(`cannot set ${k} above your own level`);
  }

  // 9.6 / 9.7: events, and notifications from v6.
  const maps: Array<'events' | 'notifications'> = version.limitNotificationsPowerLevels
    ? ['events', 'notifications']
    : ['events'];
  for (const m of maps) {
    const oldMap = isPlainObject(oldContent[m]) ? oldContent[m] : {};
    const newMap = isPlainObject(content[m]) ? content[m] : {};
    for (const key of new Set([...Object.keys(oldMap), ...Object.keys(newMap)])) {
      const had = Object.hasOwn(oldMap, key);
      const has = Object.hasOwn(newMap, key);
      const oldV = had ? num(oldMap[key]) : undefined;
      const newV = has ? num(newMap[key]) : undefined;
      if (had === has && oldV === newV) continue;
      if (had && oldV !== undefined && oldV > senderLevel) return deny(`cannot change ${m}.${key} from a level above your own`);
      if (has && newV !== undefined && newV > senderLevel) return deny(`cannot set ${m}.${key} above your own level`);
    }
  }

  // 9.8 / 9.9: users.
  const oldUsers = isPlainObject(oldContent.users) ? oldContent.users : {};
  const newUsers = isPlainObject(content.users) ? content.users : {};
  for (const user of new Set([...Object.keys(oldUsers), ...Object.keys(newUsers)])) {
    const had = Object.hasOwn(oldUsers, user);
    const has = Object.hasOwn(newUsers, user);
    const oldV = had ? num(oldUsers[user]) : undefined;
    const newV = has ? num(newUsers[user]) : undefined;
    if (had === has && oldV === newV) continue;
    if (had && user !== event.sender && oldV !== undefined && oldV >= senderLevel) {
      return deny(`cannot change the level of ${user}, whose level is not below your own`);
    }
    if (has && newV !== undefined && newV > senderLevel) return deny(`cannot raise ${user} above your own level`);
  }
  return ALLOW;
}
