import { MatrixError, notFound } from '../errors.js';
import { redactPdu } from '../rooms/eventFormat.js';
import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { networkRoomIds } from '../storage/repositories/appserviceRoomList.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import { memberCounts } from '../storage/repositories/sync.js';
import { stateMapKey } from '../types/pdu.js';

// Spec: Client-Server API, "Published room directory" (GET/POST /publicRooms).

export interface PublicRoomEntry {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  join_rule: string;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  room_type?: string;
}

export interface PublicRoomsQuery {
  limit?: number | undefined;
  since?: string | undefined;
  filter?: { generic_search_term?: string | undefined; room_types?: Array<string | null> | undefined } | undefined;
  include_all_networks?: boolean | undefined;
  third_party_instance_id?: string | undefined;
}

export interface PublicRoomsPage {
  chunk: PublicRoomEntry[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate: number;
}

/** Fetches another server's directory (set by federation; without it other servers are unknown). */
export type RemoteRoomDirectory = (server: string, query: PublicRoomsQuery) => Promise<PublicRoomsPage>;

/** A page boundary: rooms after ('n') or before ('p') the room with this sort key. */
interface Boundary {
  dir: 'n' | 'p';
  joined: number;
  roomId: string;
}

/** Without a limit a page still stops here. */
const MAX_PAGE = 1000;

const DIRECTORY_STATE = ['m.room.create', 'm.room.name', 'm.room.topic', 'm.room.canonical_alias', 'm.room.avatar', 'm.room.join_rules', 'm.room.history_visibility', 'm.room.guest_access'];
/** Join rules under which a published room is listed; other rooms appear only when world-readable. */
const LISTED_JOIN_RULES = new Set(['public', 'knock', 'knock_restricted']);

export class PublicRoomsService {
  /** Set by the federation layer to answer `server=<another server>`. */
  remote: RemoteRoomDirectory | undefined;

  constructor(private readonly deps: ServiceDeps & { rooms: RoomService }) {}

  async list(query: PublicRoomsQuery, server?: string): Promise<PublicRoomsPage> {
    if (server !== undefined && server !== this.deps.serverName) {
      if (this.remote) return this.remote(server, query);
      throw notFound(`Cannot list the room directory of ${server}`);
    }
    const since = query.since !== undefined && query.since !== '' ? decodeBoundary(query.since) : undefined;
    const rooms = (await this.localEntries(await this.listedRoomIds(query))).filter((r) => matches(r, query.filter));
    rooms.sort(compare);
    const limit = query.limit && query.limit > 0 ? Math.min(query.limit, MAX_PAGE) : MAX_PAGE;

    let start: number;
    let end: number;
    if (!since) {
      start = 0;
      end = Math.min(rooms.length, limit);
    } else if (since.dir === 'n') {
      start = firstAfter(rooms, since);
      end = Math.min(rooms.length, start + limit);
    } else {
      end = firstAfter(rooms, since, true);
      start = Math.max(0, end - limit);
    }
    const chunk = rooms.slice(start, end);
    const page: PublicRoomsPage = { chunk, total_room_count_estimate: rooms.length };
    const last = chunk[chunk.length - 1];
    const first = chunk[0];
    if (end < rooms.length && last) page.next_batch = encodeBoundary({ dir: 'n', joined: last.num_joined_members, roomId: last.room_id });
    if (start > 0 && first) page.prev_batch = encodeBoundary({ dir: 'p', joined: first.num_joined_members, roomId: first.room_id });
    return page;
  }

  /**
   * Which list a query reads (as Synapse): the main one; one application service network's
   * (`third_party_instance_id` = `<appservice id>|<network id>`); or all of them (`include_all_networks`).
   */
  private async listedRoomIds(query: PublicRoomsQuery): Promise<string[]> {
    const knex = this.deps.db.knex;
    if (query.include_all_networks) return [...new Set([...(await roomsRepo.publicRoomIds(knex)), ...(await networkRoomIds(knex))])];
    if (query.third_party_instance_id === undefined) return roomsRepo.publicRoomIds(knex);
    const bar = query.third_party_instance_id.indexOf('|');
    if (bar < 0) return [];
    return networkRoomIds(knex, { appserviceId: query.third_party_instance_id.slice(0, bar), networkId: query.third_party_instance_id.slice(bar + 1) });
  }

  /** Every published room of this server (or those of `ids`) that the directory may show, with its summary. */
  async localEntries(listed?: readonly string[]): Promise<PublicRoomEntry[]> {
    const { db } = this.deps;
    const ids = listed ? [...listed] : await roomsRepo.publicRoomIds(db.knex);
    if (ids.length === 0) return [];
    const counts = await memberCounts(db.knex, ids);
    const out: PublicRoomEntry[] = [];
    const wanted = new Set(DIRECTORY_STATE.map((t) => stateMapKey(t, '')));
    for (const roomId of ids) {
      const room = await roomsRepo.getRoom(db.knex, roomId);
      if (!room || room.currentStateGroup === null) continue;
      const version = await this.deps.rooms.roomVersion(db.knex, roomId);
      const stateIds = await this.deps.rooms.state.stateIds(db.knex, room.currentStateGroup);
      const eventIds = [...wanted].map((k) => stateIds.get(k)).filter((x): x is string => x !== undefined);
      const events = await this.deps.rooms.events.getMany(db.knex, eventIds);
      const content = (type: string): Record<string, unknown> => {
        const id = stateIds.get(stateMapKey(type, ''));
        const ev = id ? events.get(id) : undefined;
        if (!ev) return {};
        return (ev.redactedBy ? redactPdu(ev.pdu, version) : ev.pdu).content ?? {};
      };
      const joinRule = typeof content('m.room.join_rules').join_rule === 'string' ? String(content('m.room.join_rules').join_rule) : 'invite';
      const worldReadable = content('m.room.history_visibility').history_visibility === 'world_readable';
      if (!LISTED_JOIN_RULES.has(joinRule) && !worldReadable) continue;
      const entry: PublicRoomEntry = {
        room_id: roomId,
        num_joined_members: counts.get(roomId)?.joined ?? 0,
        world_readable: worldReadable,
        guest_can_join: content('m.room.guest_access').guest_access === 'can_join',
        join_rule: joinRule,
      };
      const name = content('m.room.name').name;
      if (typeof name === 'string' && name !== '') entry.name = name;
      const topic = plainTopic(content('m.room.topic'));
      if (topic !== undefined) entry.topic = topic;
      const alias = content('m.room.canonical_alias').alias;
      if (typeof alias === 'string' && alias.startsWith('#')) entry.canonical_alias = alias;
      const avatar = content('m.room.avatar').url;
      if (typeof avatar === 'string' && avatar !== '') entry.avatar_url = avatar;
      const type = content('m.room.create').type;
      if (typeof type === 'string') entry.room_type = type;
      out.push(entry);
    }
    return out;
  }
}

/** The plain-text topic: `m.topic`'s text/plain body, else the legacy `topic` string (spec: m.room.topic). */
function plainTopic(content: Record<string, unknown>): string | undefined {
  const rich = (content['m.topic'] as { 'm.text'?: unknown } | undefined)?.['m.text'];
  if (Array.isArray(rich)) {
    const plain = rich.find((r) => r && typeof r === 'object' && ((r as { mimetype?: unknown }).mimetype ?? 'text/plain') === 'text/plain');
    if (plain && typeof (plain as { body?: unknown }).body === 'string') return (plain as { body: string }).body;
  }
  return typeof content.topic === 'string' && content.topic !== '' ? content.topic : undefined;
}

function matches(room: PublicRoomEntry, filter: PublicRoomsQuery['filter']): boolean {
  if (!filter) return true;
  const types = filter.room_types;
  if (types && types.length > 0 && !types.includes(room.room_type ?? null)) return false;
  const term = filter.generic_search_term?.trim().toLowerCase();
  if (!term) return true;
  return [room.name, room.topic, room.canonical_alias, room.room_id].some((s) => s !== undefined && s.toLowerCase().includes(term));
}

/** Most joined members first, then by room ID so the order is total and pages never overlap. */
function compare(a: { num_joined_members: number; room_id: string }, b: { num_joined_members: number; room_id: string }): number {
  if (a.num_joined_members !== b.num_joined_members) return b.num_joined_members - a.num_joined_members;
  return a.room_id < b.room_id ? -1 : a.room_id > b.room_id ? 1 : 0;
}

/** Index of the first room sorted after the boundary (or, with `orEqual`, not before it). */
function firstAfter(rooms: readonly PublicRoomEntry[], b: Boundary, orEqual = false): number {
  const key = { num_joined_members: b.joined, room_id: b.roomId };
  const i = rooms.findIndex((r) => (orEqual ? compare(r, key) >= 0 : compare(r, key) > 0));
  return i === -1 ? rooms.length : i;
}

function encodeBoundary(b: Boundary): string {
  return Buffer.from(`${b.dir}\u0000${b.joined}\u0000${b.roomId}`, 'utf8').toString('base64url');
}

function decodeBoundary(token: string): Boundary {
  const parts = Buffer.from(token, 'base64url').toString('utf8').split('\u0000');
  const [dir, joined, roomId] = parts;
  if (parts.length !== 3 || (dir !== 'n' && dir !== 'p') || !/^\d+$/.test(joined ?? '') || !roomId) {
    throw new MatrixError('M_INVALID_PARAM', 'Invalid pagination token');
  }
  return { dir, joined: Number(joined), roomId };
}
