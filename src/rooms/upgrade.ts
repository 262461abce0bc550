// Spec: Client-Server API, "Room Upgrades" — server behaviour of POST /rooms/{roomId}/upgrade.
//
// Everything happens in one transaction: the tombstone in the old room, the replacement room with its
// copied state, the moved aliases and the restricted old room commit together or not at all. As in
// Synapse, nobody is invited to the new room: members follow the tombstone.
import type { Database } from '../storage/database.js';
import { MatrixError, forbidden, notFound } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { getProfile } from '../storage/repositories/profiles.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import { parseStateMapKey, stateMapKey, type ReadonlyStateMap } from '../types/pdu.js';
import { parsePowerLevelValue, requiredPowerLevel, roomCreators, userPowerLevel } from './authRules.js';
import { serverNameOf } from './eventFormat.js';
import type { Actor, RoomService } from './roomService.js';
import { getRoomVersion, type RoomVersion } from './roomVersions.js';
import type { EventDraft, RoomWriteContext } from './roomWriter.js';
import { dict } from '../util/dict.js';

export const TOMBSTONE_BODY = 'This room has been replaced';

/**
 * State copied to the replacement room unchanged: the spec's recommended list, plus m.room.related_groups
 * as Synapse does. Pinned events are not copied (they point at events of the old room).
 */
export const TRANSFERABLE_STATE_TYPES = [
  'm.room.join_rules',
  'm.room.history_visibility',
  'm.room.guest_access',
  'm.room.name',
  'm.room.topic',
  'm.room.avatar',
  'm.room.encryption',
  'm.room.server_acl',
  'm.room.related_groups',
] as const;

const LEVEL_KEYS = ['ban', 'events_default', 'invite', 'kick', 'redact', 'state_default', 'users_default'] as const;
const LEVEL_MAPS = ['events', 'users', 'notifications'] as const;

type Content = Record<string, unknown>;

/**
 * State the replacement room gets when the old room has none of that type: Synapse builds the new room with
 * the private_chat preset under the copied state, so a public room without guest access gains `can_join`.
 */
export const UPGRADE_DEFAULT_STATE: Readonly<Record<string, Content>> = {
  'm.room.join_rules': { join_rule: 'invite' },
  'm.room.history_visibility': { history_visibility: 'shared' },
  'm.room.guest_access': { guest_access: 'can_join' },
};

function isPlainObject(v: unknown): v is Content {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Pure: power levels with every level an integer (old room versions allowed strings and floats); invalid levels dropped. */
export function normalizePowerLevels(content: Content): Content {
  const out: Content = { ...content };
  for (const key of LEVEL_KEYS) {
    if (!Object.hasOwn(content, key)) continue;
    const v = parsePowerLevelValue(content[key]);
    if (v === undefined) delete out[key];
    else out[key] = v; // prototype-safe: key is one of LEVEL_KEYS
  }
  for (const key of LEVEL_MAPS) {
    if (!Object.hasOwn(content, key)) continue;
    const source = content[key];
    if (!isPlainObject(source)) {
      delete out[key];
      continue;
    }
    const map = dict<number>();
    for (const [k, raw] of Object.entries(source)) {
      const v = parsePowerLevelValue(raw);
      if (v !== undefined) map[k] = v;
    }
    out[key] = map; // prototype-safe: key is one of LEVEL_MAPS
  }
  return out;
}

/** Pure: the level that can send every state event and ban anyone at a lower level (Synapse's rule). */
export function levelToCopyState(pl: Content): number {
  const events = isPlainObject(pl.events) ? Object.values(pl.events).filter((v): v is number => typeof v === 'number') : [];
  const stateDefault = typeof pl.state_default === 'number' ? pl.state_default : 50;
  const ban = typeof pl.ban === 'number' ? pl.ban : 50;
  return Math.max(stateDefault, ban, ...events);
}

/**
 * Pure: the old room's power levels once upgraded — sending events and inviting need at least 50 and
 * more than `users_default` (spec's suggestion). Undefined when nothing needs to change.
 */
export function restrictedPowerLevels(content: Content): Content | undefined {
  const usersDefault = parsePowerLevelValue(content.users_default) ?? 0;
  const restricted = Math.max(50, usersDefault + 1);
  const out: Content = { ...content };
  let changed = false;
  for (const key of ['events_default', 'invite'] as const) {
    const current = parsePowerLevelValue(content[key]) ?? 0;
    if (current < restricted) {
      out[key] = restricted; // prototype-safe: key is events_default or invite
      changed = true;
    }
  }
  return changed ? out : undefined;
}

/**
 * Pure: the canonical alias split between the rooms, as Synapse does — the local alias and local
 * alt_aliases move to the new room, remote ones stay behind. `oldRoom` is undefined when unchanged,
 * `newRoom` when there is nothing local to carry over.
 */
export function splitCanonicalAlias(content: Content, isLocal: (alias: string) => boolean): { oldRoom?: Content; newRoom?: Content } {
  const oldRoom: Content = { ...content };
  const newRoom: Content = {};
  let changed = false;
  if (typeof content.alias === 'string' && isLocal(content.alias)) {
    newRoom.alias = content.alias;
    delete oldRoom.alias;
    changed = true;
  }
  if (Array.isArray(content.alt_aliases)) {
    const local = content.alt_aliases.filter((a): a is string => typeof a === 'string' && isLocal(a));
    if (local.length) {
      newRoom.alt_aliases = local;
      const remaining = content.alt_aliases.filter((a) => !local.includes(a as string));
      if (remaining.length) oldRoom.alt_aliases = remaining;
      else delete oldRoom.alt_aliases;
      changed = true;
    }
  }
  return { ...(changed ? { oldRoom } : {}), ...(Object.keys(newRoom).length ? { newRoom } : {}) };
}

export interface ReplacementRoomInput {
  oldRoomId: string;
  oldState: ReadonlyStateMap;
  oldVersion: RoomVersion;
  newVersion: RoomVersion;
  upgrader: string;
  memberContent: Content;
  /**
   * The old room's tombstone: the replacement's `predecessor.event_id`, as in Synapse. Absent for versions
   * whose room id is the create event's hash (v12): the tombstone names the new room, so the create event
   * cannot name the tombstone.
   */
  tombstoneEventId?: string | undefined;
  isLocalAlias(alias: string): boolean;
}

export interface ReplacementRoomPlan {
  /** Appended in order; each must pass the auth rules. */
  events: EventDraft[];
  /** Appended after `events`; one the auth rules refuse (a ban of someone powerful) is skipped. */
  bestEffort: EventDraft[];
  /** The copied power levels, sent last when the upgrader had to be raised to copy the state. */
  finalPowerLevels?: EventDraft;
  /** The canonical alias content left in the old room, when it changes. */
  oldRoomCanonicalAlias?: Content;
}

/** Pure: the replacement room's create event. */
export function replacementCreateEvent(
  input: Pick<ReplacementRoomInput, 'oldState' | 'oldRoomId' | 'newVersion' | 'upgrader' | 'tombstoneEventId'>,
): EventDraft {
  const { newVersion, upgrader } = input;
  const oldCreate = input.oldState.get(stateMapKey('m.room.create', ''))?.content ?? {};
  const creation: Content = {};
  if (!newVersion.implicitRoomCreator) creation.creator = upgrader;
  creation.room_version = newVersion.id;
  creation.predecessor =
    input.tombstoneEventId !== undefined ? { room_id: input.oldRoomId, event_id: input.tombstoneEventId } : { room_id: input.oldRoomId };
  if (typeof oldCreate.type === 'string') creation.type = oldCreate.type;
  if (typeof oldCreate['m.federate'] === 'boolean') creation['m.federate'] = oldCreate['m.federate'];
  return { type: 'm.room.create', stateKey: '', content: creation, sender: upgrader };
}

/** Pure: the events of the replacement room, from the old room's current state. */
export function planReplacementRoom(input: ReplacementRoomInput): ReplacementRoomPlan {
  const { oldState, newVersion, upgrader } = input;
  const get = (type: string, stateKey = '') => oldState.get(stateMapKey(type, stateKey));
  const draft = (type: string, content: Content, stateKey = ''): EventDraft => ({ type, stateKey, content, sender: upgrader });

  const oldCreate = get('m.room.create')?.content ?? {};
  const events: EventDraft[] = [replacementCreateEvent(input), draft('m.room.member', input.memberContent, upgrader)];
  let finalPowerLevels: EventDraft | undefined;
  const oldPl = get('m.room.power_levels');
  if (oldPl) {
    const pl = normalizePowerLevels(oldPl.content);
    const needed = levelToCopyState(pl);
    const users = Object.assign(dict<unknown>(), isPlainObject(pl.users) ? pl.users : undefined);
    if (newVersion.infiniteCreatorPower) {
      // v12: the upgrader creates the new room, with infinite power, and may not be listed.
      delete users[upgrader];
      events.push(draft('m.room.power_levels', { ...pl, users }));
    } else if (input.oldVersion.infiniteCreatorPower) {
      // From v12 to a version without creator power: the old room's creators keep the top level.
      for (const c of roomCreators(oldState, input.oldVersion)) users[c] = Math.max(100, needed);
      events.push(draft('m.room.power_levels', { ...pl, users }));
    } else if (userPowerLevel(oldState, upgrader, input.oldVersion) < needed) {
      events.push(draft('m.room.power_levels', { ...pl, users: { ...users, [upgrader]: needed } }));
      finalPowerLevels = draft('m.room.power_levels', pl);
    } else {
      events.push(draft('m.room.power_levels', pl));
    }
  }
  for (const type of TRANSFERABLE_STATE_TYPES) {
    const ev = get(type);
    const fallback = Object.hasOwn(UPGRADE_DEFAULT_STATE, type) ? UPGRADE_DEFAULT_STATE[type] : undefined;
    if (ev && Object.keys(ev.content).length) events.push(draft(type, ev.content));
    else if (!ev && fallback) events.push(draft(type, { ...fallback }));
  }
  const bestEffort: EventDraft[] = [];
  let oldRoomCanonicalAlias: Content | undefined;
  const canonical = get('m.room.canonical_alias');
  if (canonical) {
    const split = splitCanonicalAlias(canonical.content, input.isLocalAlias);
    if (split.newRoom) bestEffort.push(draft('m.room.canonical_alias', split.newRoom));
    oldRoomCanonicalAlias = split.oldRoom;
  }
  for (const [key, ev] of oldState) {
    const [type, stateKey] = parseStateMapKey(key);
    // A space keeps its children (Synapse); bans carry over so the upgrade is no way back in.
    if (type === 'm.space.child' && oldCreate.type === 'm.space' && Object.keys(ev.content).length) {
      events.push(draft(type, ev.content, stateKey));
    } else if (type === 'm.room.member' && ev.content.membership === 'ban') {
      const content: Content = { membership: 'ban' };
      if (typeof ev.content.reason === 'string') content.reason = ev.content.reason;
      bestEffort.push(draft(type, content, stateKey));
    }
  }
  return {
    events,
    bestEffort,
    ...(finalPowerLevels ? { finalPowerLevels } : {}),
    ...(oldRoomCanonicalAlias ? { oldRoomCanonicalAlias } : {}),
  };
}

/** The spec's permission check: the requester must be joined and allowed to send m.room.tombstone. */
export function assertCanUpgrade(state: ReadonlyStateMap, userId: string, version: RoomVersion): void {
  const member = state.get(stateMapKey('m.room.member', userId));
  if (member?.content.membership !== 'join') throw forbidden(`User ${userId} is not in the room`);
  if (userPowerLevel(state, userId, version) < requiredPowerLevel(state, 'm.room.tombstone', true, version)) {
    throw forbidden('You do not have permission to upgrade this room');
  }
}

/** Appends unless the auth rules refuse it (nothing is written then); refusals are logged, not raised. */
async function appendIfAllowed(ctx: RoomWriteContext, draft: EventDraft, onRefused: (err: MatrixError) => void): Promise<void> {
  try {
    await ctx.append(draft);
  } catch (err) {
    if (!(err instanceof MatrixError)) throw err;
    onRefused(err);
  }
}

/**
 * As Synapse's `transfer_room_state_on_room_upgrade` on a remote join: this server first joins the
 * replacement of a room it knew, so its aliases of the old room point at the new one, and the new room
 * takes the old one's place in our public room directory. Returns the aliases moved.
 */
export async function transferDirectoryToReplacement(db: Database, newRoomId: string, createContent: Readonly<Record<string, unknown>>): Promise<string[]> {
  const predecessor = createContent.predecessor as { room_id?: unknown } | undefined;
  const oldRoomId = typeof predecessor === 'object' && predecessor !== null && typeof predecessor.room_id === 'string' ? predecessor.room_id : undefined;
  if (!oldRoomId || oldRoomId === newRoomId) return [];
  return db.write(async (trx) => {
    const old = await roomsRepo.getRoom(trx, oldRoomId);
    if (!old) return [];
    if (old.isPublic) {
      await roomsRepo.setRoomPublic(trx, oldRoomId, false);
      await roomsRepo.setRoomPublic(trx, newRoomId, true);
    }
    return roomsRepo.moveRoomAliases(trx, oldRoomId, newRoomId);
  });
}

export class RoomUpgrades {
  /** A repeated request while one is running answers with the same replacement room. */
  private readonly running = new Map<string, Promise<string>>();

  constructor(
    private readonly deps: ServiceDeps,
    private readonly rooms: RoomService,
  ) {}

  /** POST /rooms/{roomId}/upgrade: returns the replacement room's id. */
  async upgrade(actor: Actor, roomId: string, newVersionId: string): Promise<string> {
    const newVersion = getRoomVersion(newVersionId);
    if (!newVersion) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', `Room version ${newVersionId} is not supported by this server`);
    const key = JSON.stringify([roomId, actor.userId, newVersion.id]);
    const running = this.running.get(key);
    if (running) return running;
    const work = this.run(actor, roomId, newVersion);
    this.running.set(key, work);
    try {
      return await work;
    } finally {
      this.running.delete(key);
    }
  }

  private async run(actor: Actor, roomId: string, newVersion: RoomVersion): Promise<string> {
    const db = this.deps.db.knex;
    const room = await roomsRepo.getRoom(db, roomId);
    if (!room || room.currentStateGroup === null) throw notFound('Unknown room');
    // Checked first for a clear error; checked again (and by the auth rules) inside the transaction.
    assertCanUpgrade(await this.rooms.reader.currentState(roomId), actor.userId, await this.rooms.roomVersion(db, roomId));
    const profile = await getProfile(db, actor.userId);
    const memberContent: Content = { membership: 'join' };
    if (profile?.displayname) memberContent.displayname = profile.displayname;
    if (profile?.avatar_url) memberContent.avatar_url = profile.avatar_url;
    const logRefusal = (what: string) => (err: MatrixError) =>
      this.deps.logger.info({ roomId, what, reason: err.message }, 'room upgrade: event refused, skipped');

    // v12: the room id is the create event's hash, so the create event comes first and cannot name the tombstone.
    const createEvent = newVersion.roomIdFromCreateEvent
      ? replacementCreateEvent({ oldState: await this.rooms.reader.currentState(roomId), oldRoomId: roomId, newVersion, upgrader: actor.userId })
      : undefined;
    const { roomId: newRoomId } = await this.rooms.createRoomAlongside(
      { version: newVersion, creator: actor.userId, isPublic: room.isPublic, createEvent },
      async (created, open, trx) => {
        const old = await open(roomId);
        assertCanUpgrade(old.state, actor.userId, old.version);
        const tombstone = await old.append({
          type: 'm.room.tombstone',
          stateKey: '',
          content: { body: TOMBSTONE_BODY, replacement_room: created.roomId },
          sender: actor.userId,
        });
        // The old room's state (the tombstone itself is not among what is copied).
        const plan = planReplacementRoom({
          oldRoomId: roomId,
          oldState: old.state,
          oldVersion: old.version,
          newVersion,
          upgrader: actor.userId,
          memberContent,
          tombstoneEventId: createEvent ? undefined : tombstone.eventId,
          isLocalAlias: (alias) => serverNameOf(alias) === this.deps.serverName,
        });
        // With `createEvent` the create event is already in the new room.
        for (const draft of createEvent ? plan.events.slice(1) : plan.events) await created.append(draft);
        // Aliases point at the new room before its canonical alias names them.
        await roomsRepo.moveRoomAliases(trx, roomId, created.roomId);
        for (const draft of plan.bestEffort) await appendIfAllowed(created, draft, logRefusal(`${draft.type} ${draft.stateKey}`));
        if (plan.finalPowerLevels) await created.append(plan.finalPowerLevels);

        // The old room: nobody but moderators talks or invites any more; its remaining aliases stay.
        const oldPl = old.state.get(stateMapKey('m.room.power_levels', ''));
        const restricted = oldPl ? restrictedPowerLevels(oldPl.content) : undefined;
        if (restricted) {
          await appendIfAllowed(old, { type: 'm.room.power_levels', stateKey: '', content: restricted, sender: actor.userId }, logRefusal('restrict old room'));
        }
        if (plan.oldRoomCanonicalAlias) {
          await appendIfAllowed(
            old,
            { type: 'm.room.canonical_alias', stateKey: '', content: plan.oldRoomCanonicalAlias, sender: actor.userId },
            logRefusal('old canonical alias'),
          );
        }
        // A published room's place in the directory goes to its replacement.
        if (room.isPublic) await roomsRepo.setRoomPublic(trx, roomId, false);
      },
    );
    return newRoomId;
  }
}
