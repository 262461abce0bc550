/**
 * Room versions as records of feature flags. Code elsewhere reads the flags,
 * never the version string. A new version (e.g. 12) is added by adding the
 * flags it needs and one entry below.
 */

export interface RoomVersion {
  readonly id: string;
  /** Stable (true) or unstable, as advertised in /capabilities. */
  readonly stable: boolean;
  /**
   * v1: `$opaque:server` ids carried in the PDU's `event_id`; prev/auth events are `[id, {sha256}]` pairs.
   * v3: id is `$` + standard unpadded base64 of the reference hash; prev/auth events are ids.
   * v4: as v3 with URL-safe base64.
   */
  readonly eventFormat: 'v1' | 'v3' | 'v4';
  /**
   * v1: the original algorithm. v2: state resolution v2 (room versions 2–11).
   * v2.1 (v12, MSC4297): v2 whose iterative auth checks start from an empty
   * state and whose full conflicted set also holds the conflicted state subgraph.
   */
  readonly stateResolution: 'v1' | 'v2' | 'v2.1';
  /** v5+: signing keys must be valid at the event's origin_server_ts. */
  readonly enforceKeyValidity: boolean;
  /** v1–5: `m.room.aliases` has its own auth rule and keeps `aliases` on redaction. */
  readonly specialCaseAliasesAuth: boolean;
  /**
   * v1–2: the auth rules themselves check `m.room.redaction` events against the
   * redact level / event-id domain (rule 11). From v3 this is done when the
   * redaction is applied instead.
   */
  readonly redactionAuthRule: boolean;
  /** v6+: integers must be within the canonical JSON range; no floats. */
  readonly strictCanonicalJson: boolean;
  /** v6+: `notifications` in power levels is covered by the power-level change rules. */
  readonly limitNotificationsPowerLevels: boolean;
  /** v7+: `knock` membership and join rule. */
  readonly knockJoinRule: boolean;
  /** v8+: `restricted` join rule (join_authorised_via_users_server); join_rules keeps `allow` on redaction. */
  readonly restrictedJoinRule: boolean;
  /** v9+: member events keep `join_authorised_via_users_server` on redaction. */
  readonly restrictedJoinRuleFix: boolean;
  /** v10+: power level values must be real integers (no strings / floats). */
  readonly integerPowerLevels: boolean;
  /** v10+: `knock_restricted` join rule. */
  readonly knockRestrictedJoinRule: boolean;
  /**
   * v11 (MSC2174/2175/2176/3821/3989): `redacts` lives in content; redaction
   * no longer keeps top-level origin/membership/prev_state; create keeps all
   * content; power_levels keeps `invite`; redaction keeps `redacts`;
   * member keeps `third_party_invite.signed`.
   */
  readonly updatedRedactionRules: boolean;
  /** v11+: the room creator is the create event's `sender` (no `content.creator`). */
  readonly implicitRoomCreator: boolean;
  /**
   * v11+: the spec's 255-byte limits on sender, room_id, state_key and type are enforced in bytes on
   * received events; before, only in codepoints (as Synapse, which accepted such events in older rooms).
   */
  readonly strictKeyByteLimits: boolean;
  /**
   * v12 (MSC4291): the room id is `!` + the create event's id without its `$`
   * (the URL-safe reference hash, no server part). The create event carries no
   * `room_id`, and is never listed in `auth_events`: every other event's
   * `room_id` implies it.
   */
  readonly roomIdFromCreateEvent: boolean;
  /**
   * v12 (MSC4289): the room creators — the create event's `sender` plus
   * `content.additional_creators` — have an infinite power level and may not
   * be listed in `m.room.power_levels` `users`.
   */
  readonly infiniteCreatorPower: boolean;
}

const V1: RoomVersion = {
  id: '1',
  stable: true,
  eventFormat: 'v1',
  stateResolution: 'v1',
  enforceKeyValidity: false,
  specialCaseAliasesAuth: true,
  redactionAuthRule: true,
  strictCanonicalJson: false,
  limitNotificationsPowerLevels: false,
  knockJoinRule: false,
  restrictedJoinRule: false,
  restrictedJoinRuleFix: false,
  integerPowerLevels: false,
  knockRestrictedJoinRule: false,
  updatedRedactionRules: false,
  strictKeyByteLimits: false,
  implicitRoomCreator: false,
  roomIdFromCreateEvent: false,
  infiniteCreatorPower: false,
};
const V2: RoomVersion = { ...V1, id: '2', stateResolution: 'v2' };
const V3: RoomVersion = { ...V2, id: '3', eventFormat: 'v3', redactionAuthRule: false };
const V4: RoomVersion = { ...V3, id: '4', eventFormat: 'v4' };
const V5: RoomVersion = { ...V4, id: '5', enforceKeyValidity: true };
const V6: RoomVersion = {
  ...V5,
  id: '6',
  specialCaseAliasesAuth: false,
  strictCanonicalJson: true,
  limitNotificationsPowerLevels: true,
};
const V7: RoomVersion = { ...V6, id: '7', knockJoinRule: true };
const V8: RoomVersion = { ...V7, id: '8', restrictedJoinRule: true };
const V9: RoomVersion = { ...V8, id: '9', restrictedJoinRuleFix: true };
const V10: RoomVersion = { ...V9, id: '10', integerPowerLevels: true, knockRestrictedJoinRule: true };
const V11: RoomVersion = { ...V10, id: '11', updatedRedactionRules: true, implicitRoomCreator: true, strictKeyByteLimits: true };

/**
 * Room version 12 (MSC4289 creator power, MSC4291 room id = create event hash,
 * MSC4297 state resolution v2.1). Served and advertised as stable.
 */
export const ROOM_VERSION_12: RoomVersion = Object.freeze({
  ...V11,
  id: '12',
  stateResolution: 'v2.1',
  roomIdFromCreateEvent: true,
  infiniteCreatorPower: true,
} satisfies RoomVersion);

/** The versions this server advertises and accepts. */
export const ROOM_VERSIONS: ReadonlyMap<string, RoomVersion> = new Map(
  [V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, ROOM_VERSION_12].map((v) => [v.id, Object.freeze(v)] as const),
);

/** Every version whose rules are implemented (today the same as `ROOM_VERSIONS`; unreleased ones go here only). */
export const KNOWN_ROOM_VERSIONS: ReadonlyMap<string, RoomVersion> = new Map([...ROOM_VERSIONS]);

export const DEFAULT_ROOM_VERSION = '10';

export function getRoomVersion(id: string): RoomVersion | undefined {
  return ROOM_VERSIONS.get(id);
}

/**
 * A version whose rules are implemented, advertised or not. For code that
 * must understand events of a version (auth rules: "is `room_version` a
 * recognised version"), not for deciding what rooms this server hosts.
 */
export function getKnownRoomVersion(id: string): RoomVersion | undefined {
  return KNOWN_ROOM_VERSIONS.get(id);
}

/** For /capabilities: `{ "1": "stable", ... }`. */
export function roomVersionCapabilities(): Record<string, 'stable' | 'unstable'> {
  const out: Record<string, 'stable' | 'unstable'> = {};
  // prototype-safe: ids of the room versions this code knows
  for (const v of ROOM_VERSIONS.values()) out[v.id] = v.stable ? 'stable' : 'unstable';
  return out;
}
