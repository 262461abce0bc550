import { invalidParam, notFound } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { deviceCount, roomSummaries, roomVisibleToAdmin, type RoomSummaryRow } from '../storage/repositories/adminRooms.js';
import * as stateRepo from '../storage/repositories/state.js';
import { stateMapKey } from '../types/pdu.js';
import { requiredPowerLevel, userPowerLevel } from './authRules.js';
import type { RoomService } from './roomService.js';

// Synapse admin API, "Room Admin API": rooms as an admin sees them, and making a local user a room admin.

export const ROOM_ORDERS = [
  'name',
  'alphabetical',
  'size',
  'canonical_alias',
  'joined_members',
  'joined_local_members',
  'version',
  'creator',
  'encryption',
  'federatable',
  'public',
  'join_rules',
  'guest_access',
  'history_visibility',
  'state_events',
] as const;
export type RoomOrder = (typeof ROOM_ORDERS)[number];

// As Synapse: these orders put the largest first (then `dir=b` reverses).
const LARGEST_FIRST: ReadonlySet<RoomOrder> = new Set(['size', 'joined_members', 'joined_local_members', 'state_events']);

export interface RoomListQuery {
  from: number;
  limit: number;
  orderBy: RoomOrder;
  dir: 'f' | 'b';
  searchTerm: string | undefined;
}

function str(content: Record<string, unknown> | undefined, key: string): string | null {
  const v = content?.[key];
  return typeof v === 'string' ? v : null;
}

/** One room of `GET /_synapse/admin/v1/rooms`, with Synapse's field names. */
export function roomEntry(r: RoomSummaryRow): Record<string, unknown> {
  const create = r.state.get('m.room.create');
  return {
    room_id: r.roomId,
    name: str(r.state.get('m.room.name'), 'name'),
    canonical_alias: str(r.state.get('m.room.canonical_alias'), 'alias'),
    joined_members: r.joinedMembers,
    joined_local_members: r.joinedLocalMembers,
    version: r.version,
    creator: r.creator,
    encryption: str(r.state.get('m.room.encryption'), 'algorithm'),
    federatable: create?.['m.federate'] !== false,
    public: r.isPublic,
    join_rules: str(r.state.get('m.room.join_rules'), 'join_rule'),
    guest_access: str(r.state.get('m.room.guest_access'), 'guest_access'),
    history_visibility: str(r.state.get('m.room.history_visibility'), 'history_visibility'),
    state_events: r.stateEvents,
    room_type: str(create, 'type'),
  };
}

function sortKey(entry: Record<string, unknown>, order: RoomOrder): string | number | boolean | null {
  switch (order) {
    case 'alphabetical':
    case 'name':
      return (entry.name as string | null)?.toLowerCase() ?? null;
    case 'size':
      return entry.joined_members as number;
    default:
      return entry[order] as string | number | boolean | null;
  }
}

function compare(a: unknown, b: unknown): number {
  // Rooms without the value (no name, no alias …) come last, as NULLs do in Synapse's ascending order.
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  return String(a) < String(b) ? -1 : 1;
}

export interface RoomAdminDeps extends ServiceDeps {
  rooms: RoomService;
}

export class RoomAdmin {
  constructor(private readonly deps: RoomAdminDeps) {}

  /** Synapse "List Room API": sorted and searched in memory over every room's summary. */
  async list(q: RoomListQuery): Promise<Record<string, unknown>> {
    let entries = (await roomSummaries(this.deps.db.knex, this.deps.serverName)).map(roomEntry);
    if (q.searchTerm !== undefined && q.searchTerm !== '') {
      const term = q.searchTerm.toLowerCase();
      entries = entries.filter(
        (e) =>
          (e.name as string | null)?.toLowerCase().includes(term) ||
          (e.canonical_alias as string | null)?.toLowerCase().includes(term) ||
          (e.room_id as string).toLowerCase().includes(term),
      );
    }
    const sign = (LARGEST_FIRST.has(q.orderBy) ? -1 : 1) * (q.dir === 'b' ? -1 : 1);
    entries.sort((a, b) => sign * compare(sortKey(a, q.orderBy), sortKey(b, q.orderBy)) || compare(a.room_id, b.room_id));
    const page = entries.slice(q.from, q.from + q.limit);
    const out: Record<string, unknown> = { rooms: page, offset: q.from, total_rooms: entries.length };
    if (q.from + page.length < entries.length) out.next_batch = q.from + page.length;
    if (q.from > 0) out.prev_batch = Math.max(0, q.from - q.limit);
    return out;
  }

  /** 400 for something that is not a room id, 404 for a room the admin API does not show. */
  async requireRoom(roomId: string): Promise<void> {
    if (!/^![^\s]+$/.test(roomId) || roomId.length > 255) throw invalidParam(`${roomId.slice(0, 100)} is not a legal room ID`);
    if (!(await roomVisibleToAdmin(this.deps.db.knex, roomId))) throw notFound('Room not found');
  }

  /** Synapse "Room Details API". */
  async details(roomId: string): Promise<Record<string, unknown>> {
    await this.requireRoom(roomId);
    const [summary] = await roomSummaries(this.deps.db.knex, this.deps.serverName, [roomId]);
    if (!summary) throw notFound('Room not found');
    const localMembers = (await stateRepo.roomMembers(this.deps.db.knex, roomId, ['join'])).filter((u) => u.endsWith(`:${this.deps.serverName}`));
    const devices = await deviceCount(this.deps.db.knex, localMembers);
    return {
      ...roomEntry(summary),
      avatar: str(summary.state.get('m.room.avatar'), 'url'),
      topic: str(summary.state.get('m.room.topic'), 'topic'),
      joined_local_devices: devices,
      forgotten: false,
    };
  }

  /** Synapse "Room Members API": the joined members. */
  async members(roomId: string): Promise<{ members: string[]; total: number }> {
    await this.requireRoom(roomId);
    const members = (await stateRepo.roomMembers(this.deps.db.knex, roomId, ['join'])).sort();
    return { members, total: members.length };
  }

  /** Synapse "Room State API": every current state event, in the client format. */
  async state(roomId: string, adminId: string): Promise<{ state: unknown[] }> {
    await this.requireRoom(roomId);
    const state = await this.deps.rooms.reader.currentState(roomId);
    return { state: await this.deps.rooms.reader.formatState({ userId: adminId }, state) };
  }

  /**
   * Synapse "Make Room Admin API": a local member who may change the power levels gives `userId` their own
   * level (100 when that member is a v12 creator), then `userId` joins (invited first unless the room is public).
   */
  async makeRoomAdmin(roomId: string, userId: string): Promise<void> {
    await this.requireRoom(roomId);
    const version = await this.deps.rooms.roomVersion(this.deps.db.knex, roomId);
    const state = await this.deps.rooms.reader.currentState(roomId);
    const needed = requiredPowerLevel(state, 'm.room.power_levels', true, version);
    const local = (await stateRepo.roomMembers(this.deps.db.knex, roomId, ['join'])).filter((u) => u.endsWith(`:${this.deps.serverName}`));
    let best: { userId: string; level: number } | undefined;
    for (const u of local) {
      const level = userPowerLevel(state, u, version);
      if (level >= needed && (!best || level > best.level)) best = { userId: u, level };
    }
    if (!best) throw invalidParam('No local admin user in room');
    const pl = state.get(stateMapKey('m.room.power_levels', ''));
    const content = { ...(pl?.content ?? {}) } as Record<string, unknown>;
    const users = Object.assign(Object.create(null) as Record<string, unknown>, (content.users as Record<string, unknown> | undefined) ?? {});
    const level = Number.isFinite(best.level) ? best.level : Math.max(100, ...Object.values(users).filter((v): v is number => typeof v === 'number'));
    if (userPowerLevel(state, userId, version) < level) {
      users[userId] = level;
      content.users = { ...users };
      await this.deps.rooms.sendEvent({ userId: best.userId }, roomId, { type: 'm.room.power_levels', stateKey: '', content });
    }
    const membership = (await stateRepo.currentMembership(this.deps.db.knex, roomId, userId))?.membership;
    if (membership === 'join') return;
    const joinRule = str(state.get(stateMapKey('m.room.join_rules', ''))?.content, 'join_rule');
    if (joinRule !== 'public' && membership !== 'invite') await this.deps.rooms.invite({ userId: best.userId }, roomId, userId);
    await this.deps.rooms.join({ userId }, roomId);
  }
}
