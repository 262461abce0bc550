// Spec: Client-Server API, "Creation" (POST /createRoom) — the initial events, in order, as pure data.
import { MatrixError } from '../errors.js';
import type { EventDraft } from './roomWriter.js';
import type { RoomVersion } from './roomVersions.js';
import { dict } from '../util/dict.js';

export type Preset = 'private_chat' | 'public_chat' | 'trusted_private_chat';

const DEFAULT_ENCRYPTION_ALGORITHM = 'm.megolm.v1.aes-sha2';

/** The presets `encryption_enabled_by_default_for_room_type` encrypts (Synapse's config/room.py). */
export function encryptedPresets(roomType: 'all' | 'invite' | 'off' | false): ReadonlySet<Preset> {
  if (roomType === 'all') return new Set<Preset>(['private_chat', 'trusted_private_chat', 'public_chat']);
  if (roomType === 'invite') return new Set<Preset>(['private_chat', 'trusted_private_chat']);
  return new Set<Preset>();
}

export interface CreateRoomRequest {
  visibility?: 'public' | 'private' | undefined;
  room_alias_name?: string | undefined;
  name?: string | undefined;
  topic?: string | undefined;
  invite?: string[] | undefined;
  room_version?: string | undefined;
  creation_content?: Record<string, unknown> | undefined;
  initial_state?: Array<{ type: string; state_key?: string | undefined; content: Record<string, unknown> }> | undefined;
  preset?: Preset | undefined;
  is_direct?: boolean | undefined;
  power_level_content_override?: Record<string, unknown> | undefined;
}

export interface CreatorProfile {
  displayname: string | null;
  avatar_url: string | null;
}

function defaultPowerLevels(creator: string, preset: Preset, invitees: readonly string[], version: RoomVersion): Record<string, unknown> {
  // v12 (MSC4289): creators have infinite power and may not be listed; trusted_private_chat invitees are
  // additional creators instead of users at 100.
  const users = dict<number>();
  if (!version.infiniteCreatorPower) {
    users[creator] = 100;
    if (preset === 'trusted_private_chat') for (const u of invitees) users[u] = 100;
  }
  return {
    users,
    users_default: 0,
    events: {
      'm.room.name': 50,
      'm.room.power_levels': 100,
      'm.room.history_visibility': 100,
      'm.room.canonical_alias': 50,
      'm.room.avatar': 50,
      // v12: only creators (infinite power) upgrade a room by default, as Synapse does.
      'm.room.tombstone': version.infiniteCreatorPower ? 150 : 100,
      'm.room.server_acl': 100,
      'm.room.encryption': 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: preset === 'public_chat' ? 0 : 0,
    historical: 100,
    notifications: { room: 50 },
  };
}

/** The events of a new room in the order the spec gives, before invites. */
export function initialRoomEvents(
  req: CreateRoomRequest,
  ctx: {
    creator: string;
    version: RoomVersion;
    profile: CreatorProfile;
    canonicalAlias: string | undefined;
    /** Presets whose rooms get m.room.encryption (encryption_enabled_by_default_for_room_type). */
    encryptedPresets?: ReadonlySet<Preset> | undefined;
  },
): EventDraft[] {
  const { creator, version } = ctx;
  const preset: Preset = req.preset ?? (req.visibility === 'public' ? 'public_chat' : 'private_chat');
  const invitees = req.invite ?? [];
  const creation = { ...(req.creation_content ?? {}) };
  if (version.implicitRoomCreator) delete creation.creator;
  else creation.creator = creator;
  // room_version is always written so clients need not assume "1".
  creation.room_version = version.id;
  const creators = new Set([creator]);
  if (version.infiniteCreatorPower) {
    const extra = creation.additional_creators;
    if (extra !== undefined && (!Array.isArray(extra) || !extra.every((u) => typeof u === 'string' && /^@[^:]+:.+$/.test(u)))) {
      throw new MatrixError('M_INVALID_PARAM', 'creation_content.additional_creators must be a list of user ids');
    }
    const additional = new Set<string>((extra as string[] | undefined) ?? []);
    if (preset === 'trusted_private_chat') for (const u of invitees) additional.add(u);
    additional.delete(creator);
    if (additional.size) creation.additional_creators = [...additional];
    else delete creation.additional_creators;
    for (const u of additional) creators.add(u);
  }

  const drafts: EventDraft[] = [{ type: 'm.room.create', stateKey: '', content: creation, sender: creator }];
  const memberContent: Record<string, unknown> = { membership: 'join' };
  if (ctx.profile.displayname) memberContent.displayname = ctx.profile.displayname;
  if (ctx.profile.avatar_url) memberContent.avatar_url = ctx.profile.avatar_url;
  drafts.push({ type: 'm.room.member', stateKey: creator, content: memberContent, sender: creator });

  const power = { ...defaultPowerLevels(creator, preset, invitees, version), ...(req.power_level_content_override ?? {}) };
  if (version.infiniteCreatorPower && typeof power.users === 'object' && power.users !== null) {
    for (const u of creators) {
      if (Object.hasOwn(power.users, u)) throw new MatrixError('M_INVALID_PARAM', `Room creator ${u} cannot be given a power level in this room version`);
    }
  }
  drafts.push({ type: 'm.room.power_levels', stateKey: '', content: power, sender: creator });

  if (ctx.canonicalAlias) {
    drafts.push({ type: 'm.room.canonical_alias', stateKey: '', content: { alias: ctx.canonicalAlias }, sender: creator });
  }

  const presetState: Array<[string, Record<string, unknown>]> = [
    ['m.room.join_rules', { join_rule: preset === 'public_chat' ? 'public' : 'invite' }],
    ['m.room.history_visibility', { history_visibility: 'shared' }],
  ];
  if (preset !== 'public_chat') presetState.push(['m.room.guest_access', { guest_access: 'can_join' }]);
  const initial = req.initial_state ?? [];
  for (const [type, content] of presetState) {
    // initial_state takes precedence over the preset for the same (type, state_key).
    if (!initial.some((s) => s.type === type && (s.state_key ?? '') === '')) {
      drafts.push({ type, stateKey: '', content, sender: creator });
    }
  }
  for (const s of initial) {
    if (s.type === 'm.room.create' || s.type === 'm.room.member' || s.type === 'm.room.power_levels') {
      throw new MatrixError('M_INVALID_PARAM', `initial_state may not contain ${s.type}`);
    }
    drafts.push({ type: s.type, stateKey: s.state_key ?? '', content: s.content, sender: creator });
  }
  // After initial_state, as Synapse; a creator's own m.room.encryption there is kept as given.
  if (ctx.encryptedPresets?.has(preset) && !initial.some((s) => s.type === 'm.room.encryption' && (s.state_key ?? '') === '')) {
    drafts.push({ type: 'm.room.encryption', stateKey: '', content: { algorithm: DEFAULT_ENCRYPTION_ALGORITHM }, sender: creator });
  }
  if (req.name !== undefined) drafts.push({ type: 'm.room.name', stateKey: '', content: { name: req.name }, sender: creator });
  if (req.topic !== undefined) drafts.push({ type: 'm.room.topic', stateKey: '', content: { topic: req.topic }, sender: creator });
  return drafts;
}
