import { hiddenByIgnore, ignoredUsersOf } from '../../directory/ignoredUsers.js';
import { toStrippedState } from '../../rooms/clientEvent.js';
import { matchesRoomEventFilter, type RoomEventFilter } from '../../rooms/eventFilter.js';
import { encodePaginationToken } from '../../rooms/paginationToken.js';
import type { RoomService } from '../../rooms/roomService.js';
import type { Database, Db } from '../../storage/database.js';
import { lastRoomEventAtStream, roomEventsInStreamRange, type StoredEvent } from '../../storage/repositories/events.js';
import { forgottenRooms } from '../../storage/repositories/rooms.js';
import {
  heroCandidates,
  latestEventIdsPerRoom,
  maxEventStreamOrdering,
  memberCounts,
  membershipAtStream,
  membershipsTouchedInRange,
  roomsWithEventsInRange,
  type MembershipRow,
} from '../../storage/repositories/sync.js';
import { parseStateMapKey, stateMapKey } from '../../types/pdu.js';
import { asRoomEventFilter, lazyLoadMembers, roomAllowed, timelineLimit } from '../filter.js';
import type { SyncContext, SyncProvider } from '../provider.js';
import type { StrippedStateEvent } from '../response.js';
import { mapLimit } from '../../util/mapLimit.js';

// The timeline topic: joined, invited, knocked and left rooms with their timelines and state.

/** Past this many scanned events a timeline stops looking for older visible ones and says `limited`. */
const MAX_SCAN = 500;

/** Rooms worked on at once (their reads overlap on PostgreSQL's pool; SQLite queues them anyway). */
const ROOM_CONCURRENCY = 8;


/** State shown to someone invited or knocking (spec: "Stripped state"). */
const STRIPPED_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

interface RoomPlan {
  roomId: string;
  section: 'join' | 'leave';
  /** Timeline range (after, upTo]. */
  after: number;
  upTo: number;
  /** Full state at the start of the timeline; otherwise the state delta since `after`. */
  fullState: boolean;
  /** No state at all (a rejected invite: the user never saw the room). */
  noState?: boolean;
  /** Include the summary (initial sync, newly joined, or membership changes). */
  summary: boolean;
}

interface BuiltTimeline {
  events: StoredEvent[];
  limited: boolean;
  newestRaw: StoredEvent | undefined;
  /** The oldest event in range was read: its stateBefore is the state at `after`. */
  earliestRaw: StoredEvent | undefined;
  reachedStart: boolean;
}

export interface RoomsProviderDeps {
  db: Database;
  rooms: RoomService;
}

export class RoomsProvider implements SyncProvider {
  readonly topic = 'timeline' as const;

  constructor(private readonly deps: RoomsProviderDeps) {}

  private get db(): Db {
    return this.deps.db.knex;
  }

  latest(): Promise<number> {
    return maxEventStreamOrdering(this.db);
  }

  async complete(ctx: SyncContext, to: number): Promise<void> {
    const memberships = await ctx.memberships();
    const includeLeave = ctx.filter.room?.include_leave === true;
    const forgotten = includeLeave ? await forgottenRooms(this.db, ctx.userId) : new Set<string>();
    const plans: RoomPlan[] = [];
    const invites: MembershipRow[] = [];
    const knocks: MembershipRow[] = [];
    for (const m of memberships.values()) {
      if (!roomAllowed(ctx.filter, m.roomId)) continue;
      if (m.membership === 'join') {
        plans.push({ roomId: m.roomId, section: 'join', after: 0, upTo: to, fullState: true, summary: true });
      } else if (m.membership === 'invite') {
        invites.push(m);
      } else if (m.membership === 'knock') {
        knocks.push(m);
      } else if ((m.membership === 'leave' || m.membership === 'ban') && includeLeave && !forgotten.has(m.roomId)) {
        plans.push({ roomId: m.roomId, section: 'leave', after: 0, upTo: m.streamOrdering, fullState: true, summary: false });
      }
    }
    await this.buildRooms(ctx, plans);
    await this.buildStripped(ctx, invites, 'invite');
    await this.buildStripped(ctx, knocks, 'knock');
  }

  async incremental(ctx: SyncContext, from: number, to: number): Promise<boolean> {
    if (from >= to && !ctx.fullState) return false;
    let memberships: Map<string, MembershipRow>;
    let changed: Set<string>;
    if (ctx.fullState) {
      [memberships, changed] = await Promise.all([ctx.memberships(), roomsWithEventsInRange(this.db, from, to)]);
    } else {
      // The hot path (a long-poll woken by one event): only the rooms touched in the range, in one query.
      memberships = await this.touchedMemberships(ctx, from, to);
      changed = new Set(memberships.keys());
    }
    // A membership whose event is inside (from, to] changed in this range; for those rooms, what was it at `from`?
    const movedRows = [...memberships.values()].filter((m) => m.streamOrdering > from);
    const before = new Map<string, string | undefined>();
    await Promise.all(
      movedRows.map(async (m) => before.set(m.roomId, (await membershipAtStream(this.db, m.roomId, ctx.userId, from))?.membership)),
    );
    const moved = (roomId: string) => before.has(roomId);
    const membershipAtFrom = (roomId: string) => (moved(roomId) ? before.get(roomId) : memberships.get(roomId)?.membership);

    const hasLeaves = movedRows.some((m) => m.membership === 'leave' || m.membership === 'ban');
    const forgotten = hasLeaves ? await forgottenRooms(this.db, ctx.userId) : new Set<string>();

    const plans: RoomPlan[] = [];
    const invites: MembershipRow[] = [];
    const knocks: MembershipRow[] = [];
    for (const m of memberships.values()) {
      if (!roomAllowed(ctx.filter, m.roomId)) continue;
      const membershipMoved = moved(m.roomId);
      const was = membershipAtFrom(m.roomId);
      switch (m.membership) {
        case 'join':
          if (membershipMoved && was !== 'join') {
            // Newly joined: the room as an initial sync would show it.
            ctx.newlyJoined.add(m.roomId);
            plans.push({ roomId: m.roomId, section: 'join', after: 0, upTo: to, fullState: true, summary: true });
          } else if (ctx.fullState || membershipMoved || changed.has(m.roomId)) {
            plans.push({ roomId: m.roomId, section: 'join', after: from, upTo: to, fullState: ctx.fullState, summary: ctx.fullState || membershipMoved });
          }
          break;
        case 'invite':
          if (membershipMoved || ctx.fullState) invites.push(m);
          break;
        case 'knock':
          if (membershipMoved || ctx.fullState) knocks.push(m);
          break;
        case 'leave':
        case 'ban':
          if (membershipMoved && !forgotten.has(m.roomId)) {
            const wasIn = was === 'join';
            plans.push({ roomId: m.roomId, section: 'leave', after: from, upTo: m.streamOrdering, fullState: false, noState: !wasIn, summary: false });
          }
          break;
      }
    }
    const added = await this.buildRooms(ctx, plans, true);
    const invited = await this.buildStripped(ctx, invites, 'invite');
    await this.buildStripped(ctx, knocks, 'knock');
    return added > 0 || invited > 0 || knocks.length > 0;
  }

  /** Memberships as of `to` in rooms with events in (from, to] or whose membership changed since `from`. */
  private async touchedMemberships(ctx: SyncContext, from: number, to: number): Promise<Map<string, MembershipRow>> {
    const out = new Map<string, MembershipRow>();
    for (const row of await membershipsTouchedInRange(this.db, ctx.userId, from, to)) {
      if (row.streamOrdering <= to) out.set(row.roomId, row);
      else {
        // Changed after this request's position: use the membership as of the position.
        const atTo = await membershipAtStream(this.db, row.roomId, ctx.userId, to);
        if (atTo) out.set(row.roomId, atTo);
      }
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------

  /** Builds joined/left room entries; returns how many were added to the response. */
  private async buildRooms(ctx: SyncContext, plans: RoomPlan[], skipEmpty = false): Promise<number> {
    if (plans.length === 0) return 0;
    const { events: eventStore, reader } = this.deps.rooms;
    const viewer = { userId: ctx.userId, deviceId: ctx.deviceId };
    const limit = timelineLimit(ctx.filter);
    const timelineFilter = asRoomEventFilter(ctx.filter.room?.timeline);
    const stateFilter = asRoomEventFilter(ctx.filter.room?.state);
    const lazy = lazyLoadMembers(ctx.filter);
    const selective = timelineFilter !== undefined && hasSelection(timelineFilter);
    const pageSize = selective ? Math.max(limit * 2, 20) + 1 : limit + 1;
    const ignored = await ignoredUsersOf(this.db, ctx.userId);

    // Phase 1: the newest page of every room in one query, events through the shared cache.
    const pages = await latestEventIdsPerRoom(this.db, plans.map((p) => ({ roomId: p.roomId, after: p.after, upTo: p.upTo })), pageSize);
    const pageEvents = await eventStore.getMany(this.db, [...pages.values()].flatMap((l) => l.map((x) => x.eventId)));

    // Phase 2: per room, the visible timeline and the state ids to send.
    const perRoom = await mapLimit(plans, ROOM_CONCURRENCY, async (plan) => {
      const page = (pages.get(plan.roomId) ?? []).map((x) => pageEvents.get(x.eventId)).filter((e): e is StoredEvent => e !== undefined);
      const timeline = await this.timeline(ctx, plan, page, pageSize, limit, timelineFilter, ignored);
      const stateIds = plan.noState ? [] : await this.stateIdsFor(ctx, plan, timeline, lazy);
      return { plan, timeline, stateIds };
    });
    const built = perRoom.filter(
      (b) => !(skipEmpty && !b.plan.fullState && b.plan.section === 'join' && b.timeline.events.length === 0 && b.stateIds.length === 0),
    );

    // Phase 3: every state event in one batch, then formatting.
    const stateEvents = await eventStore.getMany(this.db, built.flatMap((b) => b.stateIds));
    const summaryIds = built.filter((b) => b.plan.section === 'join' && (b.plan.summary || hasMemberEvent(b, stateEvents))).map((b) => b.plan.roomId);
    const [counts, heroes] = await Promise.all([
      summaryIds.length ? memberCounts(this.db, summaryIds) : new Map<string, { joined: number; invited: number }>(),
      summaryIds.length ? heroCandidates(this.db, summaryIds, ctx.userId) : new Map<string, string[]>(),
    ]);

    for (const { plan, timeline, stateIds } of built) {
      const statePdus = stateIds.map((id) => stateEvents.get(id)).filter((e): e is StoredEvent => e !== undefined);
      const stateFiltered = statePdus.filter((e) => matchesRoomEventFilter(e.pdu, stateFilter));
      const [timelineEvents, state] = await Promise.all([
        reader.format(timeline.events, viewer, { includeRoomId: false }),
        reader.format(stateFiltered, viewer, { includeRoomId: false }),
      ]);
      const first = timeline.events[0];
      const prevBatch = first
        ? encodePaginationToken({ depth: first.depth, stream: first.streamOrdering - 1 })
        : timeline.newestRaw
          ? encodePaginationToken({ depth: timeline.newestRaw.depth, stream: timeline.newestRaw.streamOrdering })
          : undefined;
      const tl = { events: timelineEvents, limited: timeline.limited, ...(prevBatch !== undefined ? { prev_batch: prevBatch } : {}) };
      if (plan.section === 'join') {
        const room = ctx.response.joinedRoom(plan.roomId);
        room.timeline = tl;
        room.state = { events: state };
        const c = counts.get(plan.roomId);
        if (c) {
          room.summary = {
            'm.heroes': heroes.get(plan.roomId) ?? [],
            'm.joined_member_count': c.joined,
            'm.invited_member_count': c.invited,
          };
        }
      } else {
        const room = ctx.response.leftRoom(plan.roomId);
        room.timeline = tl;
        room.state = { events: state };
      }
    }
    return built.length;
  }

  /** The newest `limit` visible events matching the filter in (after, upTo], oldest first. */
  private async timeline(
    ctx: SyncContext,
    plan: RoomPlan,
    firstPage: StoredEvent[],
    pageSize: number,
    limit: number,
    filter: RoomEventFilter | undefined,
    ignored: ReadonlySet<string>,
  ): Promise<BuiltTimeline> {
    const accepted: StoredEvent[] = [];
    let raw = firstPage;
    const newestRaw = raw[0];
    let earliestRaw: StoredEvent | undefined;
    let scanned = 0;
    let limited = false;
    let reachedStart = false;
    let requested = pageSize;
    for (;;) {
      if (raw.length === 0) {
        reachedStart = true;
        break;
      }
      earliestRaw = raw[raw.length - 1];
      const matched = filter ? raw.filter((e) => matchesRoomEventFilter(e.pdu, filter)) : raw;
      const visible = matched.length ? await this.deps.rooms.reader.filterVisible(ctx.userId, plan.roomId, matched, ignored) : [];
      accepted.push(...visible);
      scanned += raw.length;
      if (accepted.length > limit) {
        limited = true;
        break;
      }
      if (raw.length < requested) {
        reachedStart = true;
        break;
      }
      if (scanned >= MAX_SCAN) {
        limited = true;
        break;
      }
      // Older pages grow, so a room whose recent events are mostly filtered out costs few queries.
      requested = Math.min(requested * 2, 250);
      raw = await roomEventsInStreamRange(this.db, plan.roomId, plan.after, earliestRaw!.streamOrdering - 1, requested);
    }
    const events = accepted.slice(0, limit).reverse();
    return { events, limited, newestRaw, earliestRaw: reachedStart ? earliestRaw : undefined, reachedStart };
  }

  /** Event ids of the state to send: full state at the timeline start, or its change since `after`. */
  private async stateIdsFor(ctx: SyncContext, plan: RoomPlan, timeline: BuiltTimeline, lazy: boolean): Promise<string[]> {
    const { state: stateStore } = this.deps.rooms;
    let startGroup: number | null;
    const first = timeline.events[0];
    if (first) startGroup = first.stateBefore;
    else if (timeline.newestRaw) startGroup = timeline.newestRaw.stateAfter;
    else if (plan.fullState) startGroup = (await lastRoomEventAtStream(this.db, plan.roomId, plan.upTo))?.stateAfter ?? null;
    else return []; // Nothing happened in range: no state change either.
    const start = startGroup === null ? new Map<string, string>() : await stateStore.stateIds(this.db, startGroup);

    let entries: Array<[string, string]>;
    if (plan.fullState) {
      entries = [...start];
    } else {
      let sinceGroup: number | null;
      if (timeline.reachedStart && timeline.earliestRaw) sinceGroup = timeline.earliestRaw.stateBefore;
      else sinceGroup = (await lastRoomEventAtStream(this.db, plan.roomId, plan.after))?.stateAfter ?? null;
      if (sinceGroup === startGroup) entries = [];
      else {
        const since = sinceGroup === null ? new Map<string, string>() : await stateStore.stateIds(this.db, sinceGroup);
        entries = [...start].filter(([key, id]) => since.get(key) !== id);
      }
    }

    if (!lazy) return entries.map(([, id]) => id);
    // Lazy-loading members: only the members of timeline senders, and the user themself.
    const wanted = new Set(timeline.events.map((e) => e.pdu.sender));
    wanted.add(ctx.userId);
    const out = new Set<string>();
    for (const [key, id] of entries) {
      const [type, stateKey] = parseStateMapKey(key);
      if (type !== 'm.room.member' || wanted.has(stateKey)) out.add(id);
    }
    if (!plan.fullState) {
      // The client may not know these members yet (no per-device cache of sent members).
      for (const sender of wanted) {
        const id = start.get(stateMapKey('m.room.member', sender));
        if (id && !timeline.events.some((e) => e.eventId === id)) out.add(id);
      }
    }
    return [...out];
  }

  /** Invites and knocks: stripped state at the membership event (or what federation sent with it). Returns how many were added. */
  private async buildStripped(ctx: SyncContext, rows: MembershipRow[], kind: 'invite' | 'knock'): Promise<number> {
    if (rows.length === 0) return 0;
    // Invites from ignored users are never sent (spec: "Ignoring Users").
    const ignored = kind === 'invite' ? await ignoredUsersOf(this.db, ctx.userId) : new Set<string>();
    const { events: eventStore, state: stateStore } = this.deps.rooms;
    const memberEvents = await eventStore.getMany(this.db, rows.map((r) => r.eventId));
    const perRoom: Array<{ roomId: string; member: StoredEvent; ids: string[]; carried?: StrippedStateEvent[] }> = [];
    for (const row of rows) {
      const member = memberEvents.get(row.eventId);
      if (!member || (kind === 'invite' && hiddenByIgnore(ignored, { sender: member.pdu.sender }))) continue;
      const carried = member.pdu.unsigned?.[kind === 'invite' ? 'invite_room_state' : 'knock_room_state'];
      if (Array.isArray(carried) && member.stateAfter === null) {
        perRoom.push({ roomId: row.roomId, member, ids: [], carried: carried as StrippedStateEvent[] });
        continue;
      }
      const ids = member.stateAfter === null ? new Map<string, string>() : await stateStore.stateIds(this.db, member.stateAfter);
      const keys = [...STRIPPED_TYPES.map((t) => stateMapKey(t, '')), stateMapKey('m.room.member', member.pdu.sender)];
      const wanted = keys.map((k) => ids.get(k)).filter((x): x is string => x !== undefined && x !== member.eventId);
      perRoom.push({ roomId: row.roomId, member, ids: wanted });
    }
    const loaded = await eventStore.getMany(this.db, perRoom.flatMap((r) => r.ids));
    for (const r of perRoom) {
      const events: StrippedStateEvent[] = r.carried
        ? [...r.carried]
        : r.ids.map((id) => loaded.get(id)).filter((e): e is StoredEvent => e !== undefined).map((e) => toStrippedState(e.pdu));
      events.push(toStrippedState(r.member.pdu));
      if (kind === 'invite') ctx.response.invite.set(r.roomId, { invite_state: { events } });
      else ctx.response.knock.set(r.roomId, { knock_state: { events } });
    }
    return perRoom.length;
  }
}


function hasSelection(f: RoomEventFilter): boolean {
  return Boolean(f.types || f.not_types || f.senders || f.not_senders || f.rooms || f.not_rooms || f.contains_url !== undefined);
}

function hasMemberEvent(b: { timeline: BuiltTimeline; stateIds: string[] }, state: Map<string, StoredEvent>): boolean {
  return b.timeline.events.some((e) => e.pdu.type === 'm.room.member') || b.stateIds.some((id) => state.get(id)?.pdu.type === 'm.room.member');
}
