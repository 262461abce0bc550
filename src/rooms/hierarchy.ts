// Spec: Client-Server API, "Spaces" — GET /rooms/{roomId}/hierarchy, over the rooms this server knows.
// Rooms only known to other servers would need federation and are skipped, as inaccessible rooms are.
import { MatrixError, forbidden } from '../errors.js';
import type { Database, Db } from '../storage/database.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import * as stateRepo from '../storage/repositories/state.js';
import { stateMapKey, type Pdu, type ReadonlyStateMap } from '../types/pdu.js';
import type { RoomService } from './roomService.js';
import { getRoomVersion, type RoomVersion } from './roomVersions.js';

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 100;
export const MAX_DEPTH = 20;
/** Rooms looked at for one page, earlier pages included (they are walked again): bounds the work of a request. */
const MAX_ROOMS_WALKED = 1000;

export interface StrippedChildEvent {
  type: string;
  state_key: string;
  content: Record<string, unknown>;
  sender: string;
  origin_server_ts: number;
}

/** One entry of `rooms` (spec: SpaceHierarchyRoomsChunk). */
export interface HierarchyRoom {
  room_id: string;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  join_rule?: string;
  room_type?: string;
  room_version: string;
  encryption?: string;
  allowed_room_ids?: string[];
  children_state: StrippedChildEvent[];
}

export interface HierarchyRequest {
  roomId: string;
  userId: string;
  limit?: number | undefined;
  maxDepth?: number | undefined;
  suggestedOnly?: boolean | undefined;
  from?: string | undefined;
}

const SUMMARY_TYPES = [
  'm.room.create',
  'm.room.name',
  'm.room.topic',
  'm.room.avatar',
  'm.room.canonical_alias',
  'm.room.join_rules',
  'm.room.history_visibility',
  'm.room.guest_access',
  'm.room.encryption',
];
const SUMMARY_KEYS = new Set(SUMMARY_TYPES.map((t) => stateMapKey(t, '')));
const CHILD_PREFIX = stateMapKey('m.space.child', '');

// ---------------------------------------------------------------------------------------------
// Pure parts

/** Spec: an m.space.child event counts only with a `via` list of server names. */
export function hasValidVia(content: Record<string, unknown>): boolean {
  return Array.isArray(content.via) && content.via.length > 0 && content.via.every((s) => typeof s === 'string' && s.length > 0);
}

function validOrder(content: Record<string, unknown>): string | undefined {
  const o = content.order;
  return typeof o === 'string' && o.length <= 50 && /^[\x20-\x7E]+$/.test(o) ? o : undefined;
}

/**
 * Spec: "Ordering of children within a space" — children with a valid `order` first, by order; then by
 * the m.space.child event's origin_server_ts; then by room id.
 */
export function compareChildren(a: Pdu, b: Pdu): number {
  const oa = validOrder(a.content);
  const ob = validOrder(b.content);
  if (oa !== undefined && ob === undefined) return -1;
  if (oa === undefined && ob !== undefined) return 1;
  if (oa !== undefined && ob !== undefined && oa !== ob) return oa < ob ? -1 : 1;
  if (a.origin_server_ts !== b.origin_server_ts) return a.origin_server_ts - b.origin_server_ts;
  const ra = a.state_key ?? '';
  const rb = b.state_key ?? '';
  return ra < rb ? -1 : ra > rb ? 1 : 0;
}

interface PageToken {
  /** Root room, max depth and suggested_only of the first request: they may not change. */
  r: string;
  d: number;
  s: boolean;
  /** Accessible rooms already walked past. */
  o: number;
}

export function encodeHierarchyToken(t: PageToken): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

export function decodeHierarchyToken(token: string): PageToken | undefined {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Partial<PageToken>;
    if (typeof t.r !== 'string' || typeof t.s !== 'boolean' || !Number.isSafeInteger(t.d) || !Number.isSafeInteger(t.o) || t.o! < 0) return undefined;
    return t as PageToken;
  } catch {
    return undefined;
  }
}

function stringField(ev: Pdu | undefined, field: string): string | undefined {
  const v = ev?.content[field];
  return typeof v === 'string' ? v : undefined;
}

// ---------------------------------------------------------------------------------------------

interface Summary {
  entry: HierarchyRoom;
  /** Child room ids in the spec's order. */
  children: string[];
}

/** Walks m.space.child state depth first, returning the rooms the user may see or join. */
export class SpaceHierarchy {
  constructor(private readonly deps: { db: Database; rooms: RoomService }) {}

  private get db(): Db {
    return this.deps.db.knex;
  }

  async hierarchy(req: HierarchyRequest): Promise<{ rooms: HierarchyRoom[]; next_batch?: string }> {
    if (req.limit !== undefined && req.limit < 1) throw new MatrixError('M_INVALID_PARAM', 'limit must be greater than zero');
    if (req.maxDepth !== undefined && req.maxDepth < 0) throw new MatrixError('M_INVALID_PARAM', 'max_depth must not be negative');
    const limit = Math.min(req.limit ?? DEFAULT_LIMIT, MAX_LIMIT);
    let maxDepth = Math.min(req.maxDepth ?? MAX_DEPTH, MAX_DEPTH);
    let suggestedOnly = req.suggestedOnly ?? false;
    let skip = 0;
    if (req.from !== undefined) {
      const token = decodeHierarchyToken(req.from);
      if (!token || token.r !== req.roomId) throw new MatrixError('M_INVALID_PARAM', 'Unknown pagination token');
      if ((req.maxDepth !== undefined && token.d !== maxDepth) || (req.suggestedOnly !== undefined && token.s !== suggestedOnly)) {
        throw new MatrixError('M_INVALID_PARAM', 'suggested_only and max_depth cannot change on paginated requests');
      }
      maxDepth = token.d;
      suggestedOnly = token.s;
      skip = token.o;
    }

    // Depth first: the stack's top is the next room; children are pushed in reverse so the first comes next.
    const stack: Array<{ roomId: string; depth: number }> = [{ roomId: req.roomId, depth: 0 }];
    const walked = new Set<string>();
    const rooms: HierarchyRoom[] = [];
    let passed = 0;
    while (stack.length && rooms.length < limit && walked.size < MAX_ROOMS_WALKED) {
      const { roomId, depth } = stack.pop()!;
      if (walked.has(roomId)) continue;
      walked.add(roomId);
      const summary = await this.summarize(roomId, req.userId, suggestedOnly);
      if (!summary) {
        if (depth === 0) throw forbidden('You are not allowed to view this room');
        continue;
      }
      if (passed >= skip) rooms.push(summary.entry);
      passed += 1;
      if (depth < maxDepth) {
        for (let i = summary.children.length - 1; i >= 0; i--) {
          const child = summary.children[i]!;
          if (!walked.has(child)) stack.push({ roomId: child, depth: depth + 1 });
        }
      }
    }
    const more = walked.size < MAX_ROOMS_WALKED && stack.some((e) => !walked.has(e.roomId));
    return more ? { rooms, next_batch: encodeHierarchyToken({ r: req.roomId, d: maxDepth, s: suggestedOnly, o: passed }) } : { rooms };
  }

  /** The room's entry if the user may see it; undefined for unknown or inaccessible rooms. */
  private async summarize(roomId: string, userId: string, suggestedOnly: boolean): Promise<Summary | undefined> {
    const room = await roomsRepo.getRoom(this.db, roomId);
    if (!room || room.currentStateGroup === null) return undefined;
    const version = getRoomVersion(room.roomVersion);
    if (!version) return undefined;
    const memberKey = stateMapKey('m.room.member', userId);
    const state = await this.deps.rooms.state.stateEvents(
      this.db,
      room.currentStateGroup,
      (key) => SUMMARY_KEYS.has(key) || key === memberKey || key.startsWith(CHILD_PREFIX),
    );
    const get = (type: string) => state.get(stateMapKey(type, ''));
    if (!(await this.accessible(state, userId, version))) return undefined;

    const entry: HierarchyRoom = {
      room_id: roomId,
      num_joined_members: (await stateRepo.roomMembers(this.db, roomId, ['join'])).length,
      world_readable: stringField(get('m.room.history_visibility'), 'history_visibility') === 'world_readable',
      guest_can_join: stringField(get('m.room.guest_access'), 'guest_access') === 'can_join',
      room_version: room.roomVersion,
      children_state: [],
    };
    const name = stringField(get('m.room.name'), 'name');
    if (name !== undefined && name !== '') entry.name = name;
    const topic = stringField(get('m.room.topic'), 'topic');
    if (topic !== undefined && topic !== '') entry.topic = topic;
    const alias = stringField(get('m.room.canonical_alias'), 'alias');
    if (alias?.startsWith('#')) entry.canonical_alias = alias;
    const avatar = stringField(get('m.room.avatar'), 'url');
    if (avatar) entry.avatar_url = avatar;
    const joinRule = stringField(get('m.room.join_rules'), 'join_rule');
    if (joinRule !== undefined) entry.join_rule = joinRule;
    const roomType = stringField(get('m.room.create'), 'type');
    if (roomType !== undefined) entry.room_type = roomType;
    if (stringField(get('m.room.encryption'), 'algorithm') === 'm.megolm.v1.aes-sha2') entry.encryption = 'm.megolm.v1.aes-sha2';
    if (isRestricted(joinRule, version)) entry.allowed_room_ids = allowedRoomIds(get('m.room.join_rules'));

    // Spec: children_state is empty for rooms that are not spaces.
    const children: string[] = [];
    if (roomType === 'm.space') {
      const childEvents = [...state]
        .filter(([key, ev]) => key.startsWith(CHILD_PREFIX) && hasValidVia(ev.content) && (!suggestedOnly || ev.content.suggested === true))
        .map(([, ev]) => ev)
        .sort(compareChildren);
      for (const ev of childEvents) {
        const childId = ev.state_key ?? '';
        children.push(childId);
        entry.children_state.push({ type: ev.type, state_key: childId, content: ev.content, sender: ev.sender, origin_server_ts: ev.origin_server_ts });
      }
    }
    return { entry, children };
  }

  /**
   * Spec (response `rooms`): joined or invited; public, knockable, or restricted with the user in an
   * allowed room; or world-readable. A banned user sees nothing of the room.
   */
  private async accessible(state: ReadonlyStateMap, userId: string, version: RoomVersion): Promise<boolean> {
    const membership = state.get(stateMapKey('m.room.member', userId))?.content.membership;
    if (membership === 'join' || membership === 'invite') return true;
    if (membership === 'ban') return false;
    const joinRulesEvent = state.get(stateMapKey('m.room.join_rules', ''));
    const joinRule = stringField(joinRulesEvent, 'join_rule');
    if (joinRule === 'public') return true;
    if ((version.knockJoinRule && joinRule === 'knock') || (version.knockRestrictedJoinRule && joinRule === 'knock_restricted')) return true;
    if (stringField(state.get(stateMapKey('m.room.history_visibility', '')), 'history_visibility') === 'world_readable') return true;
    if (isRestricted(joinRule, version)) {
      for (const allowed of allowedRoomIds(joinRulesEvent)) {
        if ((await stateRepo.currentMembership(this.db, allowed, userId))?.membership === 'join') return true;
      }
    }
    return false;
  }
}

function isRestricted(joinRule: string | undefined, version: RoomVersion): boolean {
  return (version.restrictedJoinRule && joinRule === 'restricted') || (version.knockRestrictedJoinRule && joinRule === 'knock_restricted');
}

/** Rooms named by `m.room_membership` conditions of a restricted join rule. */
function allowedRoomIds(joinRules: Pdu | undefined): string[] {
  const allow = joinRules?.content.allow;
  if (!Array.isArray(allow)) return [];
  const out: string[] = [];
  for (const a of allow) {
    if (typeof a !== 'object' || a === null) continue;
    const rule = a as Record<string, unknown>;
    if (rule.type === 'm.room_membership' && typeof rule.room_id === 'string' && rule.room_id.startsWith('!')) out.push(rule.room_id);
  }
  return out;
}
