import type { RoomService } from '../../rooms/roomService.js';
import { LruCache } from '../../util/lru.js';
import type { Db } from '../../storage/database.js';
import { accountDataOfType, getAccountData } from '../../storage/repositories/accountData.js';
import { forgottenRooms } from '../../storage/repositories/rooms.js';
import { currentStateOfTypes, membershipWithSenderAt, membershipsWithSender, type SlidingMembership } from '../../storage/repositories/slidingRooms.js';
import type { BumpStamps } from './bumpStamps.js';
import type { ListFilters, RoomConfig, SlidingSyncRequest } from './request.js';
import { combine } from './requiredState.js';

/** Users whose memberships are kept between requests, and for how long. */
const SNAPSHOT_USERS = 5_000;
const SNAPSHOT_TTL_MS = 5 * 60_000;

// Which rooms a sliding sync request is about (MSC4186 "lists" and "room_subscriptions", as Synapse's
// room_lists.py answers): the user's rooms, filtered per list, sorted by bump stamp and cut to the ranges.

export interface UserRoom extends SlidingMembership {
  /** Joined in (since, to]: the room is sent whole, as new to the connection. */
  newlyJoined: boolean;
  /** Left in (since, to]: sent once more with the leave. */
  newlyLeft: boolean;
}

export interface ListOutcome {
  count: number;
  ops: Array<{ op: 'SYNC'; range: [number, number]; room_ids: string[] }>;
}

export interface InterestedRooms {
  lists: Map<string, ListOutcome>;
  /** Rooms in some list's window or subscribed to, with the larger of their configurations. */
  relevant: Map<string, RoomConfig>;
  /** Every room some list matches (in its window or not) and the subscribed ones. */
  all: Set<string>;
  /** The room subscriptions the user may have (a membership of theirs). */
  subscribed: Set<string>;
  memberships: Map<string, UserRoom>;
  dmRooms: ReadonlySet<string>;
  /** Sort key of each room of the user: its bump stamp, or its membership's position. */
  stamps: Map<string, number>;
}

export interface RoomListDeps {
  db: () => Db;
  now: () => number;
  rooms: Pick<RoomService, 'events'>;
  bumpStamps: BumpStamps;
}

export class RoomLists {
  /** m.room.create `type` per room: it never changes, so it is kept (null: no type). */
  private readonly roomTypes = new Map<string, string | null>();

  /**
   * Each user's memberships as last read, brought forward by reading only the rows changed since: a user in
   * a thousand rooms costs one read of a thousand rows per few minutes, not per request. The expiry bounds how
   * long a change that does not move the stream (a purge, a state reset) can go unseen.
   */
  private readonly snapshots: LruCache<string, { upTo: number; rows: Map<string, SlidingMembership> }>;

  constructor(private readonly deps: RoomListDeps) {
    this.snapshots = new LruCache(SNAPSHOT_USERS, SNAPSHOT_TTL_MS, deps.now);
  }

  private async currentMemberships(db: Db, userId: string, to: number): Promise<SlidingMembership[]> {
    const snapshot = this.snapshots.get(userId);
    if (!snapshot) {
      const rows = await membershipsWithSender(db, userId);
      const upTo = Math.max(to, ...rows.map((r) => r.streamOrdering));
      this.snapshots.set(userId, { upTo, rows: new Map(rows.map((r) => [r.roomId, r])) });
      return rows;
    }
    if (to > snapshot.upTo) {
      const changed = await membershipsWithSender(db, userId, snapshot.upTo);
      for (const r of changed) snapshot.rows.set(r.roomId, r);
      snapshot.upTo = Math.max(to, snapshot.upTo, ...changed.map((r) => r.streamOrdering));
    }
    return [...snapshot.rows.values()];
  }

  async compute(userId: string, req: SlidingSyncRequest, sinceTimeline: number | undefined, to: number): Promise<InterestedRooms> {
    const db = this.deps.db();
    const [own, forgotten] = await Promise.all([this.membershipsAt(db, userId, sinceTimeline, to), forgottenRooms(db, userId)]);
    // Synapse's filter_membership_for_sync: all but the user's own leaves, unless left just now; kicks stay.
    const listed = new Map<string, UserRoom>();
    for (const m of own.values()) {
      if (forgotten.has(m.roomId)) continue;
      if (m.membership !== 'leave' || m.newlyLeft || m.sender !== userId) listed.set(m.roomId, m);
    }
    const stamps = await this.stamps([...listed.values()], to);
    const facts = new RoomFacts(db, userId, [...listed.keys()], this.deps.rooms, this.roomTypes, listed);
    const dmRooms = await dmRoomsOf(db, userId);
    const out: InterestedRooms = { lists: new Map(), relevant: new Map(), all: new Set(), subscribed: new Set(), memberships: listed, dmRooms, stamps };
    const relevant = (roomId: string, config: RoomConfig) => {
      const had = out.relevant.get(roomId);
      out.relevant.set(roomId, had ? combine(had, config) : config);
    };

    let sorted: string[] | undefined;
    for (const list of req.lists) {
      const ids = list.filters ? await facts.filter([...listed.keys()], list.filters, dmRooms) : [...listed.keys()];
      for (const id of ids) out.all.add(id);
      const outcome: ListOutcome = { count: ids.length, ops: [] };
      const matched = new Set(ids);
      sorted ??= [...listed.keys()].sort((a, b) => stamps.get(b)! - stamps.get(a)! || (a < b ? -1 : a > b ? 1 : 0));
      const ordered = sorted.filter((id) => matched.has(id));
      const ranges: Array<[number, number]> = list.ranges ?? [[0, Math.max(0, ordered.length - 1)]];
      for (const [start, end] of ranges) {
        const window = end >= start ? ordered.slice(start, end + 1) : [];
        for (const id of window) relevant(id, list.config);
        outcome.ops.push({ op: 'SYNC', range: [start, end], room_ids: window });
      }
      out.lists.set(list.name, outcome);
    }

    for (const [roomId, config] of req.subscriptions) {
      // A subscription needs a membership of the user (a room they were in shows up to their leave).
      const m = listed.get(roomId) ?? own.get(roomId);
      if (!m || forgotten.has(roomId)) continue;
      if (!listed.has(roomId)) {
        listed.set(roomId, m);
        stamps.set(roomId, (await this.stamps([m], to)).get(roomId)!);
      }
      out.all.add(roomId);
      out.subscribed.add(roomId);
      relevant(roomId, config);
    }
    return out;
  }

  /** The user's memberships as of `to`, marked newly joined or left since `since`. */
  private async membershipsAt(db: Db, userId: string, since: number | undefined, to: number): Promise<Map<string, UserRoom>> {
    const out = new Map<string, UserRoom>();
    for (const row of await this.currentMemberships(db, userId, to)) {
      // Changed after this request's position: use the membership as of the position.
      const atTo = row.streamOrdering <= to ? row : await membershipWithSenderAt(db, row.roomId, userId, to);
      if (!atTo) continue;
      let newlyJoined = false;
      let newlyLeft = false;
      if (since !== undefined && atTo.streamOrdering > since) {
        const before = (await membershipWithSenderAt(db, row.roomId, userId, since))?.membership;
        newlyJoined = atTo.membership === 'join' && before !== 'join';
        newlyLeft = atTo.membership === 'leave' && before !== 'leave';
      }
      out.set(row.roomId, { ...atTo, newlyJoined, newlyLeft });
    }
    return out;
  }

  /** Joined rooms sort by their bump stamp; others (and joined rooms without one) by their membership event. */
  private async stamps(rooms: readonly UserRoom[], to: number): Promise<Map<string, number>> {
    const joined = rooms.filter((m) => m.membership === 'join').map((m) => m.roomId);
    const bumps = joined.length ? await this.deps.bumpStamps.at(joined, to) : new Map<string, number>();
    const out = new Map<string, number>();
    for (const m of rooms) out.set(m.roomId, (m.membership === 'join' ? bumps.get(m.roomId) : undefined) ?? Math.max(0, m.streamOrdering));
    return out;
  }
}

/** Rooms in the user's `m.direct` account data (Synapse: the flattened lists of room ids, nothing else). */
async function dmRoomsOf(db: Db, userId: string): Promise<Set<string>> {
  const out = new Set<string>();
  const content = await getAccountData(db, userId, '', 'm.direct');
  if (!content) return out;
  for (const ids of Object.values(content)) {
    if (!Array.isArray(ids)) continue;
    for (const id of ids) if (typeof id === 'string') out.add(id);
  }
  return out;
}

/** Facts the list filters read, loaded only when a filter asks for them. */
class RoomFacts {
  private encrypted?: Promise<Set<string>>;
  private names?: Promise<Map<string, string>>;
  private tags?: Promise<Map<string, Set<string>>>;

  constructor(
    private readonly db: Db,
    private readonly userId: string,
    private readonly roomIds: readonly string[],
    private readonly rooms: Pick<RoomService, 'events'>,
    private readonly typeCache: Map<string, string | null>,
    private readonly memberships: ReadonlyMap<string, UserRoom>,
  ) {}

  async filter(ids: string[], f: ListFilters, dmRooms: ReadonlySet<string>): Promise<string[]> {
    let out = ids;
    if (f.is_dm !== undefined) out = out.filter((id) => dmRooms.has(id) === f.is_dm);
    if (f.spaces !== undefined) {
      const children = await this.spaceChildren(f.spaces);
      out = out.filter((id) => children.has(id));
    }
    if (f.is_encrypted !== undefined) {
      const enc = await (this.encrypted ??= this.loadEncrypted());
      out = out.filter((id) => enc.has(id) === f.is_encrypted);
    }
    if (f.is_invite !== undefined) out = out.filter((id) => (this.memberships.get(id)?.membership === 'invite') === f.is_invite);
    if (f.room_types !== undefined || f.not_room_types !== undefined) {
      const types = await this.roomTypes(out);
      out = out.filter((id) => {
        if (!types.has(id)) return false; // Unknown state (an invite without a create event): Synapse leaves it out.
        const t = types.get(id)!;
        if (f.room_types && !f.room_types.includes(t)) return false;
        return !(f.not_room_types && f.not_room_types.includes(t));
      });
    }
    if (f.room_name_like !== undefined) {
      const needle = f.room_name_like.toLowerCase();
      const names = await (this.names ??= this.loadNames());
      out = out.filter((id) => (names.get(id) ?? '').toLowerCase().includes(needle));
    }
    if (f.tags !== undefined || f.not_tags !== undefined) {
      const tags = await (this.tags ??= this.loadTags());
      out = out.filter((id) => {
        const own = tags.get(id) ?? new Set<string>();
        if (f.tags && !f.tags.some((t) => own.has(t))) return false;
        return !(f.not_tags && f.not_tags.some((t) => own.has(t)));
      });
    }
    return out;
  }

  private async loadEncrypted(): Promise<Set<string>> {
    const refs = await currentStateOfTypes(this.db, this.roomIds, ['m.room.encryption']);
    const out = new Set(refs.map((r) => r.roomId));
    // Invites to rooms this server lacks: what the invite carried.
    for (const [roomId, stripped] of await this.strippedOfUnknown()) if (stripped.some((e) => e.type === 'm.room.encryption')) out.add(roomId);
    return out;
  }

  /** m.room.create `type` per room, null for rooms without one; rooms whose create event is unknown are absent. */
  private async roomTypes(ids: readonly string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    const missing: string[] = [];
    for (const id of ids) {
      if (this.typeCache.has(id)) out.set(id, this.typeCache.get(id)!);
      else missing.push(id);
    }
    if (missing.length) {
      const refs = await currentStateOfTypes(this.db, missing, ['m.room.create']);
      const events = await this.rooms.events.getMany(this.db, refs.map((r) => r.eventId));
      for (const r of refs) {
        const content = events.get(r.eventId)?.pdu.content;
        if (!content) continue;
        const t = typeof content.type === 'string' ? content.type : null;
        this.typeCache.set(r.roomId, t);
        out.set(r.roomId, t);
      }
      const unknown = await this.strippedOfUnknown();
      for (const id of missing) {
        if (out.has(id)) continue;
        const create = unknown.get(id)?.find((e) => e.type === 'm.room.create');
        if (create) out.set(id, typeof create.content?.type === 'string' ? (create.content.type as string) : null);
      }
    }
    return out;
  }

  private async loadNames(): Promise<Map<string, string>> {
    const refs = await currentStateOfTypes(this.db, this.roomIds, ['m.room.name']);
    const events = await this.rooms.events.getMany(this.db, refs.map((r) => r.eventId));
    const out = new Map<string, string>();
    for (const r of refs) {
      const name = events.get(r.eventId)?.pdu.content?.name;
      if (typeof name === 'string') out.set(r.roomId, name);
    }
    return out;
  }

  private async loadTags(): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    for (const row of await accountDataOfType(this.db, this.userId, 'm.tag')) {
      const tags = row.content.tags;
      if (row.roomId && tags && typeof tags === 'object' && !Array.isArray(tags)) out.set(row.roomId, new Set(Object.keys(tags)));
    }
    return out;
  }

  /** Rooms named by `m.space.child` state of the given spaces the user is joined to (no sub-spaces). */
  private async spaceChildren(spaces: readonly string[]): Promise<Set<string>> {
    const joined = spaces.filter((id) => this.memberships.get(id)?.membership === 'join');
    const out = new Set<string>();
    if (!joined.length) return out;
    const refs = await currentStateOfTypes(this.db, joined, ['m.space.child'], true);
    const events = await this.rooms.events.getMany(this.db, refs.map((r) => r.eventId));
    for (const r of refs) {
      // A child event without `via` is a removed child (spec: "m.space.child").
      const via = events.get(r.eventId)?.pdu.content?.via;
      if (Array.isArray(via) && via.length > 0) out.add(r.stateKey);
    }
    return out;
  }

  private unknownStripped?: Promise<Map<string, Array<{ type: string; content?: Record<string, unknown> }>>>;

  /** Invite or knock events of rooms this server has no state of, with the stripped state they carried. */
  private strippedOfUnknown(): Promise<Map<string, Array<{ type: string; content?: Record<string, unknown> }>>> {
    return (this.unknownStripped ??= (async () => {
      const out = new Map<string, Array<{ type: string; content?: Record<string, unknown> }>>();
      const pending = [...this.memberships.values()].filter((m) => m.membership === 'invite' || m.membership === 'knock');
      if (!pending.length) return out;
      const events = await this.rooms.events.getMany(this.db, pending.map((m) => m.eventId));
      for (const m of pending) {
        const e = events.get(m.eventId);
        if (!e || e.stateAfter !== null) continue;
        const carried = e.pdu.unsigned?.[m.membership === 'invite' ? 'invite_room_state' : 'knock_room_state'];
        if (Array.isArray(carried)) out.set(m.roomId, carried.filter((x): x is { type: string; content?: Record<string, unknown> } => !!x && typeof x === 'object' && typeof (x as { type?: unknown }).type === 'string'));
      }
      return out;
    })());
  }
}
