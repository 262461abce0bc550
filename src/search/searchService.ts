import { MatrixError } from '../errors.js';
import type { ClientEvent } from '../rooms/clientEvent.js';
import { matchesRoomEventFilter, type RoomEventFilter } from '../rooms/eventFilter.js';
import { encodePaginationToken } from '../rooms/paginationToken.js';
import type { Viewer } from '../rooms/roomReader.js';
import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import type { StoredEvent } from '../storage/repositories/events.js';
import { getProfile } from '../storage/repositories/profiles.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import {
  countMatches,
  highlightedWords,
  roomEventsByTimestamp,
  searchPage,
  searchWords,
  type SearchEngine,
  type SearchHit,
  type SearchQuery,
} from '../storage/repositories/search.js';
import * as stateRepo from '../storage/repositories/state.js';
import { stateMapKey } from '../types/pdu.js';
import { SEARCHABLE_KEYS } from '../relations/extract.js';
import type { EventIndexer } from '../relations/indexer.js';
import { dict } from '../util/dict.js';

export interface RoomEventsCriteria {
  search_term: string;
  keys?: string[] | undefined;
  filter?: RoomEventFilter | undefined;
  order_by?: 'recent' | 'rank' | undefined;
  event_context?: { before_limit?: number | undefined; after_limit?: number | undefined; include_profile?: boolean | undefined } | undefined;
  include_state?: boolean | undefined;
  groupings?: { group_by?: Array<{ key?: string | undefined }> | undefined } | undefined;
}

interface SearchResult {
  rank: number;
  result: ClientEvent;
  context?: {
    start?: string;
    end?: string;
    events_before: ClientEvent[];
    events_after: ClientEvent[];
    profile_info?: Record<string, { displayname?: string; avatar_url?: string }>;
  };
}

export interface RoomEventsResults {
  count: number;
  highlights: string[];
  results: SearchResult[];
  state?: Record<string, ClientEvent[]>;
  groups?: Record<string, Record<string, { results: string[]; order: number; next_batch?: string }>>;
  next_batch?: string;
}

const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 50;
/** Above this many matches the count is the engine's (pre-visibility) count. */
const EXACT_COUNT_LIMIT = 500;

interface BatchToken {
  /** rank order: matches already consumed; recent order: stream position to continue below. */
  o: number;
  r?: number;
}

function encodeBatch(t: BatchToken): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

function decodeBatch(token: string): BatchToken {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as BatchToken;
    if (typeof t.o === 'number' && Number.isSafeInteger(t.o) && t.o >= 0) return t;
  } catch {
    // fall through
  }
  throw new MatrixError('M_INVALID_PARAM', 'Invalid next_batch token');
}

/** POST /search, room_events category (spec: "Server Side Search"): unencrypted, visible events only. */
export class SearchService {
  constructor(
    private readonly deps: ServiceDeps & { rooms: RoomService },
    private readonly engine: SearchEngine,
    private readonly indexer: EventIndexer,
  ) {}

  private get db() {
    return this.deps.db.knex;
  }

  /** Rooms the user may search: joined rooms, and rooms they left (up to their leave) unless forgotten. */
  private async searchableRooms(userId: string): Promise<Array<{ roomId: string; ceiling: number | undefined }>> {
    const rows = await stateRepo.roomsForUser(this.db, userId, ['join', 'leave', 'ban']);
    const forgotten = await roomsRepo.forgottenRooms(this.db, userId);
    const out: Array<{ roomId: string; ceiling: number | undefined }> = [];
    const left = rows.filter((r) => r.membership !== 'join' && !forgotten.has(r.roomId));
    const leaves = await this.deps.rooms.events.getMany(this.db, left.map((r) => r.eventId));
    for (const r of rows) {
      if (r.membership === 'join') out.push({ roomId: r.roomId, ceiling: undefined });
      else if (!forgotten.has(r.roomId)) {
        const leave = leaves.get(r.eventId);
        if (leave) out.push({ roomId: r.roomId, ceiling: leave.streamOrdering });
      }
    }
    return out;
  }

  async searchRoomEvents(viewer: Viewer, criteria: RoomEventsCriteria, nextBatch: string | undefined): Promise<RoomEventsResults> {
    const order = criteria.order_by ?? 'rank';
    const token = nextBatch !== undefined ? decodeBatch(nextBatch) : undefined;
    const filter = criteria.filter;
    const limit = Math.min(Math.max(filter?.limit ?? DEFAULT_LIMIT, 1), MAX_LIMIT);
    const keys = criteria.keys?.length ? criteria.keys : [...SEARCHABLE_KEYS];
    for (const k of keys) {
      if (!(SEARCHABLE_KEYS as readonly string[]).includes(k)) throw new MatrixError('M_INVALID_PARAM', `Unknown search key ${k}`);
    }
    const words = searchWords(criteria.search_term);

    let rooms = await this.searchableRooms(viewer.userId);
    if (filter?.rooms) rooms = rooms.filter((r) => filter.rooms!.includes(r.roomId));
    if (filter?.not_rooms) rooms = rooms.filter((r) => !filter.not_rooms!.includes(r.roomId));
    const exact = (types: string[] | undefined) => (types && !types.some((t) => t.includes('*')) ? types : undefined);
    const query: SearchQuery = {
      words,
      rooms,
      keys,
      senders: filter?.senders,
      notSenders: filter?.not_senders,
      types: exact(filter?.types),
      notTypes: exact(filter?.not_types),
    };
    await Promise.race([this.indexer.idle(), new Promise((r) => setTimeout(r, 2_000).unref())]);

    const ceilings = new Map(rooms.map((r) => [r.roomId, r.ceiling]));
    const accepted: Array<{ hit: SearchHit; ev: StoredEvent }> = [];
    let offset = token?.o ?? 0;
    let before = token?.r;
    let exhausted = false;
    let scanned = 0;
    // Visibility and the rest of the filter apply after the query, so read pages until the batch is full.
    while (accepted.length < limit && !exhausted && scanned < 5_000) {
      const pageSize = Math.max(limit * 3, 30);
      const hits = await searchPage(this.db, this.engine, query, { order, offset, before, limit: pageSize });
      if (hits.length < pageSize) exhausted = true;
      if (!hits.length) break;
      scanned += hits.length;
      const usable = await this.visible(viewer, hits, filter, ceilings);
      for (const hit of hits) {
        if (accepted.length >= limit) {
          exhausted = false;
          break;
        }
        offset += 1;
        before = hit.streamOrdering;
        const ev = usable.get(hit.eventId);
        if (ev) accepted.push({ hit, ev });
      }
    }

    const count = await this.count(viewer, query, filter, ceilings);
    const formatted = await this.deps.rooms.reader.format(accepted.map((a) => a.ev), viewer);
    const results: SearchResult[] = [];
    for (let i = 0; i < accepted.length; i++) {
      const { hit, ev } = accepted[i]!;
      const result: SearchResult = { rank: hit.rank, result: formatted[i]! };
      if (criteria.event_context) result.context = await this.context(viewer, ev, criteria.event_context);
      results.push(result);
    }
    const out: RoomEventsResults = {
      count,
      highlights: await highlightedWords(this.db, this.engine, words, accepted.map((a) => a.hit.eventId)),
      results,
    };
    const next = exhausted ? undefined : encodeBatch(order === 'rank' ? { o: offset } : { o: 0, r: before! });
    if (next !== undefined) out.next_batch = next;
    if (criteria.include_state) {
      out.state = dict();
      for (const roomId of new Set(accepted.map((a) => a.ev.pdu.room_id))) {
        out.state[roomId] = await this.deps.rooms.reader.stateEvents(viewer, roomId).catch(() => []);
      }
    }
    const groupKeys = (criteria.groupings?.group_by ?? []).map((g) => g.key).filter((k) => k === 'room_id' || k === 'sender');
    if (groupKeys.length) {
      out.groups = {};
      for (const key of groupKeys) {
        const groups = dict<{ results: string[]; order: number; next_batch?: string }>();
        for (const { ev } of accepted) {
          const value = key === 'room_id' ? ev.pdu.room_id : ev.pdu.sender;
          const group = (groups[value] ??= { results: [], order: Object.keys(groups).length + 1 });
          group.results.push(ev.eventId);
          if (next !== undefined) group.next_batch = next;
        }
        out.groups[key] = groups; // prototype-safe: key is room_id or sender
      }
    }
    return out;
  }

  /** The hits the viewer may see (per room, with the leave ceiling) that pass the whole filter. */
  private async visible(
    viewer: Viewer,
    hits: readonly SearchHit[],
    filter: RoomEventFilter | undefined,
    ceilings: ReadonlyMap<string, number | undefined>,
  ): Promise<Map<string, StoredEvent>> {
    const loaded = await this.deps.rooms.events.getMany(this.db, hits.map((h) => h.eventId));
    const byRoom = new Map<string, StoredEvent[]>();
    for (const h of hits) {
      const ev = loaded.get(h.eventId);
      if (!ev || ev.rejected || ev.redactedBy || !ceilings.has(ev.pdu.room_id)) continue;
      const ceiling = ceilings.get(ev.pdu.room_id);
      if (ceiling !== undefined && ev.streamOrdering > ceiling) continue;
      if (!matchesRoomEventFilter(ev.pdu, filter)) continue;
      byRoom.set(ev.pdu.room_id, [...(byRoom.get(ev.pdu.room_id) ?? []), ev]);
    }
    const out = new Map<string, StoredEvent>();
    for (const [roomId, evs] of byRoom) {
      for (const ev of await this.deps.rooms.reader.filterVisible(viewer.userId, roomId, evs)) out.set(ev.eventId, ev);
    }
    return out;
  }

  /** Exact (visibility-filtered) when the matches are few, otherwise the engine's count. */
  private async count(viewer: Viewer, query: SearchQuery, filter: RoomEventFilter | undefined, ceilings: ReadonlyMap<string, number | undefined>): Promise<number> {
    const total = await countMatches(this.db, this.engine, query);
    if (total > EXACT_COUNT_LIMIT || total === 0) return total;
    const hits = await searchPage(this.db, this.engine, query, { order: 'recent', offset: 0, before: undefined, limit: EXACT_COUNT_LIMIT });
    return (await this.visible(viewer, hits, filter, ceilings)).size;
  }

  private async context(
    viewer: Viewer,
    ev: StoredEvent,
    opts: NonNullable<RoomEventsCriteria['event_context']>,
  ): Promise<NonNullable<SearchResult['context']>> {
    const roomId = ev.pdu.room_id;
    const beforeLimit = Math.min(Math.max(opts.before_limit ?? 5, 0), 100);
    const afterLimit = Math.min(Math.max(opts.after_limit ?? 5, 0), 100);
    const point = { depth: ev.depth, stream: ev.streamOrdering };
    const before = await this.deps.rooms.reader.messages(viewer, roomId, {
      from: encodePaginationToken({ depth: point.depth, stream: point.stream - 1 }), dir: 'b', limit: beforeLimit,
    });
    const after = await this.deps.rooms.reader.messages(viewer, roomId, { from: encodePaginationToken(point), dir: 'f', limit: afterLimit });
    const context: NonNullable<SearchResult['context']> = {
      start: before.end ?? encodePaginationToken({ depth: point.depth, stream: point.stream - 1 }),
      end: after.end ?? encodePaginationToken(point),
      events_before: before.chunk,
      events_after: after.chunk,
    };
    if (opts.include_profile) {
      // The profile as it was at the event: the sender's member event in the state before it.
      const profiles = dict<{ displayname?: string; avatar_url?: string }>();
      const senders = new Set([ev.pdu.sender, ...before.chunk.map((e) => e.sender), ...after.chunk.map((e) => e.sender)]);
      const state = ev.stateBefore !== null ? await this.deps.rooms.state.stateEvents(this.db, ev.stateBefore) : new Map();
      for (const sender of senders) {
        const member = state.get(stateMapKey('m.room.member', sender));
        const content = (member?.content ?? (await getProfile(this.db, sender)) ?? {}) as Record<string, unknown>;
        const profile: { displayname?: string; avatar_url?: string } = {};
        if (typeof content.displayname === 'string') profile.displayname = content.displayname;
        if (typeof content.avatar_url === 'string') profile.avatar_url = content.avatar_url;
        profiles[sender] = profile;
      }
      context.profile_info = profiles;
    }
    return context;
  }

  /** GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event: the closest event the viewer may see. */
  async timestampToEvent(viewer: Viewer, roomId: string, ts: number, dir: 'f' | 'b'): Promise<{ event_id: string; origin_server_ts: number }> {
    const access = await this.deps.rooms.reader.readableUpTo(viewer.userId, roomId);
    const ceiling = access.untilStream ?? Number.MAX_SAFE_INTEGER;
    let after: { ts: number; stream: number } | undefined;
    for (let scanned = 0; scanned < 2_000; ) {
      const page = await roomEventsByTimestamp(this.db, roomId, ts, dir, after, 100);
      if (!page.length) break;
      scanned += page.length;
      const last = page[page.length - 1]!;
      after = { ts: last.pdu.origin_server_ts, stream: last.streamOrdering };
      const visible = new Set((await this.deps.rooms.reader.filterVisible(viewer.userId, roomId, page.filter((e) => e.streamOrdering <= ceiling))).map((e) => e.eventId));
      const found = page.find((e) => visible.has(e.eventId));
      if (found) return { event_id: found.eventId, origin_server_ts: found.pdu.origin_server_ts };
      if (page.length < 100) break;
    }
    throw new MatrixError('M_NOT_FOUND', `Unable to find event from ${ts} in ${dir === 'f' ? 'forward' : 'backward'} direction`, 404);
  }
}
