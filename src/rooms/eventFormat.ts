/**
 * Event (PDU) format: content hashes, redaction, reference hashes, event ids,
 * signing and building. Pure: no I/O.
 */
import { createHash, randomBytes } from 'node:crypto';
import { decodeBase64, encodeBase64, encodeBase64Url } from '../crypto/base64.js';
import { canonicalJsonBytes } from '../crypto/canonicalJson.js';
import { signJson, verifyJsonSignature, type SigningKey } from '../crypto/signing.js';
import type { EventHashes, EventReference, Pdu } from '../types/pdu.js';
import type { RoomVersion } from './roomVersions.js';
import { dict } from '../util/dict.js';

function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

// ---------------------------------------------------------------------------
// Content hash

/** Raw sha256 of the event without `unsigned`, `signatures` and `hashes`. */
export function contentHashBytes(pdu: Pdu, opts?: { strictIntegers?: boolean }): Buffer {
  const { unsigned: _u, signatures: _s, hashes: _h, ...rest } = pdu;
  return sha256(canonicalJsonBytes(rest, opts));
}

/** The content hash as unpadded base64, the value of `hashes.sha256`. */
export function computeContentHash(pdu: Pdu, opts?: { strictIntegers?: boolean }): string {
  return encodeBase64(contentHashBytes(pdu, opts));
}

/** True when `hashes.sha256` matches the event. Never throws. */
export function checkContentHash(pdu: Pdu): boolean {
  try {
    const claimed = pdu.hashes?.sha256;
    if (typeof claimed !== 'string') return false;
    return decodeBase64(claimed).equals(contentHashBytes(pdu));
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// Redaction

const TOP_LEVEL_KEYS = [
  'event_id',
  'type',
  'room_id',
  'sender',
  'state_key',
  'content',
  'hashes',
  'signatures',
  'depth',
  'prev_events',
  'auth_events',
  'origin_server_ts',
] as const;
/** Protected before v11 only (removed by MSC2176 / MSC3989). */
const LEGACY_TOP_LEVEL_KEYS = ['origin', 'membership', 'prev_state'] as const;

function keptContentKeys(type: string, version: RoomVersion): readonly string[] | 'all' {
  switch (type) {
    case 'm.room.member':
      return version.restrictedJoinRuleFix ? ['membership', 'join_authorised_via_users_server'] : ['membership'];
    case 'm.room.create':
      return version.updatedRedactionRules ? 'all' : ['creator'];
    case 'm.room.join_rules':
      return version.restrictedJoinRule ? ['join_rule', 'allow'] : ['join_rule'];
    case 'm.room.power_levels': {
      const keys = ['ban', 'events', 'events_default', 'kick', 'redact', 'state_default', 'users', 'users_default'];
      return version.updatedRedactionRules ? [...keys, 'invite'] : keys;
    }
    case 'm.room.aliases':
      return version.specialCaseAliasesAuth ? ['aliases'] : [];
    case 'm.room.history_visibility':
      return ['history_visibility'];
    case 'm.room.redaction':
      return version.updatedRedactionRules ? ['redacts'] : [];
    default:
      return [];
  }
}

/**
 * The spec's redaction algorithm for `version`: strips every top-level key not
 * protected and every content key not protected for the event's type.
 * Returns a new object (deep copy); `unsigned` is dropped.
 */
export function redactPdu(pdu: Pdu, version: RoomVersion): Pdu {
  const src = pdu as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const topKeys: readonly string[] = version.updatedRedactionRules
    ? TOP_LEVEL_KEYS
    : [...TOP_LEVEL_KEYS, ...LEGACY_TOP_LEVEL_KEYS];
  for (const k of topKeys) {
    if (Object.hasOwn(src, k) && src[k] !== undefined) out[k] = clone(src[k]); // prototype-safe: k is a protected key name
  }
  const content = isPlainObject(src.content) ? src.content : {};
  const kept = keptContentKeys(String(src.type), version);
  let newContent: Record<string, unknown> = {};
  if (kept === 'all') {
    newContent = clone(content);
  } else {
    for (const k of kept) if (Object.hasOwn(content, k)) newContent[k] = clone(content[k]); // prototype-safe: k is a protected key name
  }
  // MSC3821 (v11): a member event keeps `third_party_invite.signed`.
  if (version.updatedRedactionRules && src.type === 'm.room.member') {
    const tpi = content.third_party_invite;
    if (isPlainObject(tpi) && Object.hasOwn(tpi, 'signed')) {
      newContent.third_party_invite = { signed: clone(tpi.signed) };
    }
  }
  out.content = newContent;
  return out as Pdu;
}

// ---------------------------------------------------------------------------
// Reference hash and event ids

export function referenceHashBytes(pdu: Pdu, version: RoomVersion): Buffer {
  const { signatures: _s, unsigned: _u, ...rest } = redactPdu(pdu, version);
  return sha256(canonicalJsonBytes(rest, { strictIntegers: version.strictCanonicalJson }));
}

/** Reference hash as standard unpadded base64 (the form used in v1/v2 `[id, {sha256}]` pairs). */
export function computeReferenceHash(pdu: Pdu, version: RoomVersion): string {
  return encodeBase64(referenceHashBytes(pdu, version));
}

/** A random opaque local part for v1/v2 event ids. */
export function randomLocalEventId(): string {
  return encodeBase64Url(randomBytes(18));
}

/**
 * A new event id for `pdu`.
 * - v1/v2 format: `$<random>:<serverName>`; needs `serverName` (the random
 *   part comes from `randomLocalId`, default `randomLocalEventId`). The result
 *   must be written into the PDU's `event_id` before hashing and signing.
 * - v3: `$` + standard unpadded base64 of the reference hash.
 * - v4+: `$` + URL-safe unpadded base64 of the reference hash.
 */
export function computeEventId(
  pdu: Pdu,
  version: RoomVersion,
  serverName?: string,
  randomLocalId: () => string = randomLocalEventId,
): string {
  switch (version.eventFormat) {
    case 'v1':
      if (!serverName) throw new Error('room versions with v1 event format need a server name for new event ids');
      return `$${randomLocalId()}:${serverName}`;
    case 'v3':
      return '$' + encodeBase64(referenceHashBytes(pdu, version));
    case 'v4':
      return '$' + encodeBase64Url(referenceHashBytes(pdu, version));
  }
}

/**
 * The id of an existing event: its `event_id` for the v1 format (throws if
 * absent), else the id derived from its reference hash.
 */
export function eventIdOf(pdu: Pdu, version: RoomVersion): string {
  if (version.eventFormat === 'v1') {
    if (typeof pdu.event_id !== 'string') throw new Error('v1-format PDU has no event_id');
    return pdu.event_id;
  }
  return computeEventId(pdu, version);
}

function referenceIds(refs: unknown): string[] {
  if (!Array.isArray(refs)) return [];
  const out: string[] = [];
  for (const r of refs as unknown[]) {
    if (typeof r === 'string') out.push(r);
    else if (Array.isArray(r) && typeof r[0] === 'string') out.push(r[0]);
  }
  return out;
}

/** Ids in `auth_events`, whichever format. */
export function authEventIds(pdu: Pdu): string[] {
  return referenceIds(pdu.auth_events);
}

/** Ids in `prev_events`, whichever format. */
export function prevEventIds(pdu: Pdu): string[] {
  return referenceIds(pdu.prev_events);
}

// ---------------------------------------------------------------------------
// Room ids derived from the create event (v12, MSC4291)

/** True for the create event of a version whose room id is the create event's hash (it has no `room_id`). */
function isHashedRoomCreate(pdu: { readonly [k: string]: unknown }, version: RoomVersion): boolean {
  return version.roomIdFromCreateEvent && pdu.type === 'm.room.create';
}

/** v12: the room id of the room a create event creates: `!` + its event id without the `$`. */
export function roomIdFromCreateEventId(createEventId: string): string {
  return '!' + createEventId.slice(1);
}

/**
 * The id of the room's create event when the version derives room ids from it
 * (v12: `$` + the room id without its `!`), else undefined.
 */
export function createEventIdOfRoom(roomId: string, version: RoomVersion): string | undefined {
  return version.roomIdFromCreateEvent && roomId.startsWith('!') ? '$' + roomId.slice(1) : undefined;
}

/**
 * The room an event belongs to: its `room_id`, or — for a create event of a
 * version that derives room ids from it (v12), which carries none — the room
 * id its event id gives. For stored events whose id is known.
 */
export function roomIdOfEvent(pdu: { readonly room_id?: unknown; readonly type?: unknown }, eventId: string): string | undefined {
  if (typeof pdu.room_id === 'string') return pdu.room_id;
  return pdu.type === 'm.room.create' && eventId.startsWith('$') ? roomIdFromCreateEventId(eventId) : undefined;
}

/**
 * The auth event ids the rules work with: `auth_events`, plus — for versions
 * whose room id implies the create event (v12) — the create event's id for
 * every event but the create event itself.
 */
export function impliedAuthEventIds(pdu: Pdu, version: RoomVersion): string[] {
  const ids = authEventIds(pdu);
  if (version.roomIdFromCreateEvent && pdu.type !== 'm.room.create' && typeof pdu.room_id === 'string') {
    const createId = createEventIdOfRoom(pdu.room_id, version);
    if (createId !== undefined && !ids.includes(createId)) ids.push(createId);
  }
  return ids;
}

/** Target of a redaction event: `content.redacts` in v11+, top-level `redacts` before. */
export function redactsOf(pdu: Pdu, version: RoomVersion): string | undefined {
  const v = version.updatedRedactionRules ? pdu.content?.redacts : pdu.redacts;
  return typeof v === 'string' ? v : undefined;
}

// ---------------------------------------------------------------------------
// Signing

/**
 * Sign the redacted form of `pdu` as `serverName` and return a copy of the
 * full PDU carrying the merged signatures. `hashes` must already be set.
 */
export function signPdu(pdu: Pdu, serverName: string, key: SigningKey, version: RoomVersion): Pdu {
  const signed = signJson(redactPdu(pdu, version), serverName, key);
  const out = clone(pdu);
  out.signatures = Object.assign(dict<Record<string, string>>(), isPlainObject(pdu.signatures) ? clone(pdu.signatures) : undefined);
  out.signatures[serverName] = { ...(out.signatures[serverName] ?? {}), ...signed.signatures[serverName] };
  return out;
}

/** Set `hashes.sha256` to the content hash, then `signPdu`. */
export function hashAndSignPdu(pdu: Pdu, serverName: string, key: SigningKey, version: RoomVersion): Pdu {
  const withHash: Pdu = { ...pdu, hashes: { sha256: computeContentHash(pdu, { strictIntegers: version.strictCanonicalJson }) } };
  return signPdu(withHash, serverName, key, version);
}

/** Verify `serverName`'s signature `keyId` over the redacted PDU. Never throws. */
export function verifyPduSignature(
  pdu: Pdu,
  serverName: string,
  keyId: string,
  publicKeyBase64: string,
  version: RoomVersion,
): boolean {
  try {
    return verifyJsonSignature(redactPdu(pdu, version), serverName, keyId, publicKeyBase64);
  } catch {
    return false;
  }
}

/** Server name part of a user id / room id / v1 event id (`sigil localpart:server`). */
export function serverNameOf(id: string): string | undefined {
  const i = id.indexOf(':');
  return i < 0 ? undefined : id.slice(i + 1);
}

/**
 * Servers whose signature a PDU must carry (spec "Validating hashes and
 * signatures on received events"): the sender's server; for the v1 event
 * format also the event id's server; for restricted joins also the server of
 * `join_authorised_via_users_server`.
 */
/** An invite redeeming a third-party invite: made by any resident server on the original inviter's behalf. */
export function isThirdPartyInvite(pdu: Pdu): boolean {
  return pdu.type === 'm.room.member' && pdu.content?.membership === 'invite' && Object.hasOwn(pdu.content, 'third_party_invite');
}

export function requiredSignatureServers(pdu: Pdu, version: RoomVersion): string[] {
  const out = new Set<string>();
  // Such an invite need not carry the inviter's server's signature (as Synapse); the invitee's server makes or
  // countersigns every one of them, so its signature is required instead.
  const signer = isThirdPartyInvite(pdu) && typeof pdu.state_key === 'string' ? pdu.state_key : String(pdu.sender);
  const senderServer = serverNameOf(signer);
  if (senderServer) out.add(senderServer);
  if (version.eventFormat === 'v1' && typeof pdu.event_id === 'string') {
    const s = serverNameOf(pdu.event_id);
    if (s) out.add(s);
  }
  if (
    version.restrictedJoinRule &&
    pdu.type === 'm.room.member' &&
    pdu.content?.membership === 'join' &&
    typeof pdu.content.join_authorised_via_users_server === 'string'
  ) {
    const s = serverNameOf(pdu.content.join_authorised_via_users_server);
    if (s) out.add(s);
  }
  return [...out];
}

// ---------------------------------------------------------------------------
// Building

export interface PduSkeleton {
  /** Ignored for the create event of a v12 room, which has none (its id gives the room id). */
  room_id: string;
  sender: string;
  type: string;
  state_key?: string;
  content: Record<string, unknown>;
  prev_events: string[];
  auth_events: string[];
  depth: number;
  origin_server_ts: number;
  /** For m.room.redaction: placed top-level (v1–10) or in content (v11+). */
  redacts?: string;
  unsigned?: Record<string, unknown>;
}

export interface BuildPduOptions {
  serverName: string;
  key: SigningKey;
  /** v1 format only: the content hashes of referenced events, for `[id, {sha256}]` pairs. */
  hashLookup?: (eventId: string) => Partial<EventHashes> | undefined;
  /** v1 format only: generator of the random local part of the event id. */
  randomLocalId?: () => string;
  /** Add the legacy top-level `origin` property (not needed by any version). */
  includeOrigin?: boolean;
}

/**
 * Build a complete PDU of `version` from a skeleton: formats prev/auth
 * references, places `redacts`, fills `content.creator` for create events
 * where the version needs it, computes the content hash, signs, and derives
 * the event id.
 */
export function buildPdu(skeleton: PduSkeleton, version: RoomVersion, opts: BuildPduOptions): { pdu: Pdu; eventId: string } {
  const content = clone(skeleton.content);
  if (skeleton.type === 'm.room.create' && !version.implicitRoomCreator && content.creator === undefined) {
    content.creator = skeleton.sender;
  }
  let redactsTop: string | undefined;
  if (skeleton.redacts !== undefined) {
    if (version.updatedRedactionRules) content.redacts = skeleton.redacts;
    else redactsTop = skeleton.redacts;
  }
  const refs = (ids: string[]): EventReference[] =>
    version.eventFormat === 'v1' ? ids.map((id) => [id, clone(opts.hashLookup?.(id) ?? {})]) : [...ids];

  const pdu: Pdu = {
    auth_events: refs(skeleton.auth_events),
    prev_events: refs(skeleton.prev_events),
    content,
    depth: skeleton.depth,
    hashes: { sha256: '' },
    origin_server_ts: skeleton.origin_server_ts,
    room_id: skeleton.room_id,
    sender: skeleton.sender,
    type: skeleton.type,
    signatures: {},
  };
  // v12: the create event has no room_id; the room id is derived from the returned event id.
  if (isHashedRoomCreate(pdu, version)) delete (pdu as Partial<Pdu>).room_id;
  if (skeleton.state_key !== undefined) pdu.state_key = skeleton.state_key;
  if (redactsTop !== undefined) pdu.redacts = redactsTop;
  if (opts.includeOrigin) pdu.origin = opts.serverName;
  let eventId: string | undefined;
  if (version.eventFormat === 'v1') {
    eventId = computeEventId(pdu, version, opts.serverName, opts.randomLocalId);
    pdu.event_id = eventId;
  }
  let signed = hashAndSignPdu(pdu, opts.serverName, opts.key, version);
  if (skeleton.unsigned !== undefined) signed = { ...signed, unsigned: clone(skeleton.unsigned) };
  return { pdu: signed, eventId: eventId ?? computeEventId(signed, version) };
}

// ---------------------------------------------------------------------------
// Format checks

const MAX_DEPTH = 2 ** 63 - 1;

/**
 * Structural checks on a received PDU for `version` (types of required
 * fields, reference format, size of reference lists). Returns a reason, or
 * null when the PDU is well-formed. Canonical-JSON strictness (v6+) is
 * checked separately with `canonicalJson(pdu, { strictIntegers: true })`.
 */
export function checkPduFormat(pdu: unknown, version: RoomVersion): string | null {
  if (!isPlainObject(pdu)) return 'PDU is not an object';
  if (isHashedRoomCreate(pdu, version)) {
    if (pdu.room_id !== undefined) return 'create event must not have a room_id in this room version';
  } else if (typeof pdu.room_id !== 'string') {
    return 'room_id must be a string';
  }
  for (const k of ['sender', 'type'] as const) {
    if (typeof pdu[k] !== 'string') return `${k} must be a string`;
  }
  if (pdu.state_key !== undefined && typeof pdu.state_key !== 'string') return 'state_key must be a string';
  if (!isPlainObject(pdu.content)) return 'content must be an object';
  if (!isPlainObject(pdu.hashes) || typeof pdu.hashes.sha256 !== 'string') return 'hashes.sha256 missing';
  if (!isPlainObject(pdu.signatures)) return 'signatures must be an object';
  if (typeof pdu.depth !== 'number' || !Number.isInteger(pdu.depth) || pdu.depth < 0 || pdu.depth > MAX_DEPTH) {
    return 'depth must be a non-negative integer';
  }
  if (typeof pdu.origin_server_ts !== 'number' || !Number.isInteger(pdu.origin_server_ts)) {
    return 'origin_server_ts must be an integer';
  }
  const okRef = (r: unknown): boolean =>
    version.eventFormat === 'v1'
      ? Array.isArray(r) && r.length === 2 && typeof r[0] === 'string' && isPlainObject(r[1])
      : typeof r === 'string' && r.startsWith('$');
  for (const [k, max] of [
    ['prev_events', 20],
    ['auth_events', 10],
  ] as const) {
    const refs = pdu[k];
    if (!Array.isArray(refs) || !refs.every(okRef)) return `${k} has the wrong format for this room version`;
    if (refs.length > max) return `too many ${k}`;
  }
  if (version.eventFormat === 'v1' && typeof pdu.event_id !== 'string') return 'event_id missing';
  if (pdu.type === 'm.room.redaction' && version.updatedRedactionRules) {
    if (pdu.content.redacts !== undefined && typeof pdu.content.redacts !== 'string') return 'content.redacts must be a string';
  }
  return null;
}
