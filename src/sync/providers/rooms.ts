import { ignoredUsersOf } from '../../directory/ignoredUsers.js';
import { strippedStateFor } from '../strippedState.js';
import { toClientEvent } from '../../rooms/clientEvent.js';
import { ROOM_VERSIONS } from '../../rooms/roomVersions.js';
import { matchesRoomEventFilter, type RoomEventFilter } from '../../rooms/eventFilter.js';
import { encodePaginationToken } from '../../rooms/paginationToken.js';
import type { RoomService } from '../../rooms/roomService.js';
import type { Database, Db } from '../../storage/database.js';
import { lastRoomEventAtStream, roomEventsInStreamRange, type StoredEvent } from '../../storage/repositories/events.js';
import { forgottenRooms } from '../../storage/repositories/rooms.js';
import {
  heroCandidates,
  inCurrentState,
  joinedInRange,
  latestEventIdsPerRoom,
  maxEventStreamOrdering,
  memberCounts,
  membershipAtStream,
  membershipsTouchedInRange,
  namingEventIds,
  roomsWithEventsInRange,
  type MembershipRow,
} from '../../storage/repositories/sync.js';
import { parseStateMapKey, stateMapKey } from '../../types/pdu.js';
import { asRoomEventFilter, includeRedundantMembers, lazyLoadMembers, roomAllowed, timelineLimit } from '../filter.js';
import { LazyMembersCache } from '../lazyMembers.js';
import type { SyncContext, SyncProvider } from '../provider.js';
import type { Timeline } from '../response.js';
import { encodeSyncToken } from '../token.js';
import type { ClientEvent } from '../../rooms/clientEvent.js';
import { mapLimit } from '../../util/mapLimit.js';

// The timeline topic: joined, invited, knocked and left rooms with their timelines and state.

/** Past this many scanned events a timeline stops looking for older visible ones and says `limited`. */
const MAX_SCAN = 500;

/** Rooms worked on at once (their reads overlap on PostgreSQL's pool; SQLite queues them anyway). */
const ROOM_CONCURRENCY = 8;


interface RoomPlan {
  roomId: string;
  section: 'join' | 'leave' | 'peek';
  /** Timeline range (after, upTo]. */
  after: number;
  upTo: number;
  /** Full state at the start of the timeline; otherwise the state delta since `after`. */
  fullState: boolean;
  /** No state at all (a rejected invite: the user never saw the room). */
  noState?: boolean;
  /** Include the summary (initial sync, newly joined, or membership changes). */
  summary: boolean;
  /** Joined since the last sync: the timeline says `limited` (the client has no history of it, as Synapse). */
  newlyJoined?: boolean;
  /** The user's own leave, shown even when it is out of band (a rejected invite to a room we never had). */
  ownLeave?: string;
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
  now: () => number;
}

export class RoomsProvider implements SyncProvider {
  readonly topic = 'timeline' as const;

  private readonly sentMembers: LazyMembersCache;

  constructor(private readonly deps: RoomsProviderDeps) {
    this.sentMembers = new LazyMembersCache(deps.now);
  }

  private get db(): Db {
    return this.deps.db.knex;
  }

  latest(): Promise<number> {
    return maxEventStreamOrdering(this.db);
  }

  async complete(ctx: SyncContext, to: number): Promise<void> {
    this.sentMembers.reset(ctx.userId, ctx.deviceId);
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
            plans.push({ roomId: m.roomId, section: 'join', after: 0, upTo: to, fullState: true, summary: true, newlyJoined: true });
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
            // Joined and left within the range: the client never had the room's state, so it gets all of it.
            const joinedMeanwhile = !wasIn && (await joinedInRange(this.db, m.roomId, ctx.userId, from, m.streamOrdering));
            plans.push({
              roomId: m.roomId, section: 'leave', after: from, upTo: m.streamOrdering,
              fullState: joinedMeanwhile, noState: !wasIn && !joinedMeanwhile, summary: false,
              ...(!wasIn && !joinedMeanwhile ? { ownLeave: m.eventId } : {}),
            });
          }
          break;
      }
    }
    const added = await this.buildRooms(ctx, plans, true);
    const invited = await this.buildStripped(ctx, invites, 'invite');
    await this.buildStripped(ctx, knocks, 'knock');
    return added > 0 || invited > 0 || knocks.length > 0;
  }

  /**
   * MSC2753 peeks of the device, built as joined rooms are: a `fresh` peek (new since the client's token)
   * comes whole, as a newly joined room; the others bring what happened in the token's timeline range.
   * Returns how many rooms were added.
   */
  buildPeeks(ctx: SyncContext, peeks: ReadonlyArray<{ roomId: string; fresh: boolean }>): Promise<number> {
    const upTo = ctx.to.timeline;
    const plans: RoomPlan[] = [];
    for (const { roomId, fresh } of peeks) {
      if (fresh || ctx.since === undefined) plans.push({ roomId, section: 'peek', after: 0, upTo, fullState: true, summary: true });
      else if (ctx.fullState || ctx.since.timeline < upTo) {
        plans.push({ roomId, section: 'peek', after: ctx.since.timeline, upTo, fullState: ctx.fullState, summary: ctx.fullState });
      }
    }
    return this.buildRooms(ctx, plans, ctx.since !== undefined);
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
    // Member events this device was already sent are left out of incremental syncs (unless asked for).
    const dedupe = lazy && !includeRedundantMembers(ctx.filter) && ctx.since !== undefined && !ctx.fullState;
    const selective = timelineFilter !== undefined && hasSelection(timelineFilter);
    const pageSize = selective ? Math.max(limit * 2, 20) + 1 : limit + 1;
    const ignored = await ignoredUsersOf(this.db, ctx.userId);
    const federationFormat = ctx.filter.event_format === 'federation';
    const format = async (events: StoredEvent[]): Promise<ClientEvent[]> =>
      // The federation format is the PDU itself; the response types name client events only.
      federationFormat ? ((await reader.formatFederation(events)) as unknown as ClientEvent[]) : reader.format(events, viewer, { includeRoomId: false });

    // Phase 1: the newest page of every room in one query, events through the shared cache.
    const pages = await latestEventIdsPerRoom(this.db, plans.map((p) => ({ roomId: p.roomId, after: p.after, upTo: p.upTo })), pageSize);
    const pageEvents = await eventStore.getMany(this.db, [...pages.values()].flatMap((l) => l.map((x) => x.eventId)));

    /** Out-of-band leaves shown: rooms we may not have, so formatted without the room's version. */
    const outOfBand = new Set<string>();
    const formatTimeline = async (events: StoredEvent[]): Promise<ClientEvent[]> => {
      const oob = events.filter((e) => outOfBand.has(e.eventId));
      if (!oob.length) return format(events);
      const fallback = ROOM_VERSIONS.get('10')!;
      const own = oob.map((e) =>
        federationFormat ? (e.pdu as unknown as ClientEvent) : toClientEvent(e.pdu, fallback, { eventId: e.eventId, now: Date.now(), includeRoomId: false }),
      );
      return [...(await format(events.filter((e) => !outOfBand.has(e.eventId)))), ...own];
    };
    // Phase 2: per room, the visible timeline and the state ids to send.
    const perRoom = await mapLimit(plans, ROOM_CONCURRENCY, async (plan) => {
      const page = (pages.get(plan.roomId) ?? []).map((x) => pageEvents.get(x.eventId)).filter((e): e is StoredEvent => e !== undefined);
      let timeline = await this.timeline(ctx, plan, page, pageSize, limit, timelineFilter, ignored);
      if (plan.ownLeave !== undefined && !timeline.events.some((e) => e.eventId === plan.ownLeave)) {
        // An out-of-band leave is no room event: as Synapse, the rejection still comes down with the user's leave.
        const own = await eventStore.get(this.db, plan.ownLeave);
        if (own && own.pdu.type === 'm.room.member' && own.pdu.state_key === ctx.userId) {
          timeline = { ...timeline, events: [...timeline.events, own] };
          outOfBand.add(own.eventId);
        }
      }
      let state = plan.noState ? [] : await this.stateFor(ctx, plan, timeline, lazy);
      if (dedupe) {
        state = state.filter(([key, id]) => {
          const [type, stateKey] = parseStateMapKey(key);
          return type !== 'm.room.member' || !this.sentMembers.alreadySent(ctx.userId, ctx.deviceId, plan.roomId, stateKey, id);
        });
      }
      return { plan, timeline, stateIds: state.map(([, id]) => id) };
    });

    // Phase 3: every state event in one batch, the state filter, then formatting.
    const stateEvents = await eventStore.getMany(this.db, perRoom.flatMap((b) => b.stateIds));
    const built = perRoom
      .map((b) => ({
        ...b,
        statePdus: b.stateIds
          .map((id) => stateEvents.get(id))
          .filter((e): e is StoredEvent => e !== undefined && matchesRoomEventFilter(e.pdu, stateFilter)),
      }))
      .filter((b) => !(skipEmpty && !b.plan.fullState && b.plan.section !== 'leave' && b.timeline.events.length === 0 && b.statePdus.length === 0));
    const summaryIds = built.filter((b) => b.plan.section !== 'leave' && (b.plan.summary || hasMemberEvent(b))).map((b) => b.plan.roomId);
    const [counts, heroes, named] = await Promise.all([
      summaryIds.length ? memberCounts(this.db, summaryIds) : new Map<string, { joined: number; invited: number }>(),
      summaryIds.length ? heroCandidates(this.db, summaryIds, ctx.userId) : new Map<string, string[]>(),
      this.namedRooms(summaryIds),
    ]);

    for (const { plan, timeline, statePdus } of built) {
      const [timelineEvents, state] = await Promise.all([formatTimeline(timeline.events), format(statePdus)]);
      if (lazy) {
        const sent = [...statePdus, ...timeline.events].filter((e) => e.pdu.type === 'm.room.member' && typeof e.pdu.state_key === 'string');
        this.sentMembers.remember(ctx.userId, ctx.deviceId, plan.roomId, sent.map((e) => ({ member: e.pdu.state_key!, eventId: e.eventId })));
      }
      const tl: Timeline = {
        events: timelineEvents,
        limited: timeline.limited || plan.newlyJoined === true,
        prev_batch: this.prevBatch(ctx, plan, timeline),
      };
      if (plan.section !== 'leave') {
        const room = plan.section === 'join' ? ctx.response.joinedRoom(plan.roomId) : ctx.response.peekedRoom(plan.roomId);
        room.timeline = tl;
        room.state = { events: state };
        const c = counts.get(plan.roomId);
        if (c) {
          room.summary = {
            // Heroes name an unnamed room (spec: "Calculating the display name for a room").
            ...(named.has(plan.roomId) ? {} : { 'm.heroes': heroes.get(plan.roomId) ?? [] }),
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

  /**
   * Where /messages continues backwards. As Synapse: before the first event when the timeline was cut or is
   * an incremental slice; when the whole history up to now fitted, the end of the timeline (paginating
   * from there returns it all again).
   */
  private prevBatch(ctx: SyncContext, plan: RoomPlan, timeline: BuiltTimeline): string {
    const first = timeline.events[0];
    if (first && (timeline.limited || plan.after !== 0)) return encodePaginationToken({ depth: first.depth, stream: first.streamOrdering - 1 });
    const newest = timeline.newestRaw;
    if (newest) return encodePaginationToken({ depth: newest.depth, stream: newest.streamOrdering });
    return encodeSyncToken({ ...ctx.to, timeline: plan.upTo });
  }

  /** Rooms with a non-empty m.room.name or m.room.canonical_alias. */
  private async namedRooms(roomIds: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    if (roomIds.length === 0) return out;
    const ids = await namingEventIds(this.db, roomIds);
    const events = await this.deps.rooms.events.getMany(this.db, [...ids.values()].flat());
    for (const [roomId, list] of ids) {
      for (const id of list) {
        const content = events.get(id)?.pdu.content;
        if ((typeof content?.name === 'string' && content.name !== '') || (typeof content?.alias === 'string' && content.alias !== '')) out.add(roomId);
      }
    }
    return out;
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
      const visible = matched.length ? await this.visibleOrCurrent(ctx, plan, matched, ignored) : [];
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

  /**
   * The events the user may see, plus state events that are part of the room's current state: a join made
   * while the user could not see the room still shows in the timeline (as Synapse's always_include_ids).
   */
  private async visibleOrCurrent(ctx: SyncContext, plan: RoomPlan, events: StoredEvent[], ignored: ReadonlySet<string>): Promise<StoredEvent[]> {
    const visible = await this.deps.rooms.reader.filterVisible(ctx.userId, plan.roomId, events, ignored);
    // A peeker reads a world-readable room's current state anyway (GET /state), so its events show too.
    if (plan.section === 'leave' || visible.length === events.length) return visible;
    const shown = new Set(visible.map((e) => e.eventId));
    const hiddenState = events.filter((e) => !shown.has(e.eventId) && typeof e.pdu.state_key === 'string').map((e) => e.eventId);
    const current = await inCurrentState(this.db, plan.roomId, hiddenState);
    if (current.size === 0) return visible;
    return events.filter((e) => shown.has(e.eventId) || current.has(e.eventId));
  }

  /** The state to send as (state key, event id): full state at the timeline start, or its change since `after`. */
  private async stateFor(ctx: SyncContext, plan: RoomPlan, timeline: BuiltTimeline, lazy: boolean): Promise<Array<[string, string]>> {
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

    if (!lazy) return entries;
    const senders = new Set(timeline.events.map((e) => e.pdu.sender));
    if (plan.fullState) {
      // Lazy-loading members: only the members of timeline senders, and the user themself.
      senders.add(ctx.userId);
      return entries.filter(([key]) => {
        const [type, stateKey] = parseStateMapKey(key);
        return type !== 'm.room.member' || senders.has(stateKey);
      });
    }
    // Incremental: every state change (a gap's members too, as Synapse, which does not lazy-load gappy
    // syncs), plus the members of timeline senders, whom the client may not have been sent yet.
    const out = new Map(entries);
    const inTimeline = new Set(timeline.events.map((e) => e.eventId));
    for (const sender of senders) {
      const key = stateMapKey('m.room.member', sender);
      const id = start.get(key);
      if (id && !inTimeline.has(id)) out.set(key, id);
    }
    return [...out];
  }

  /** Invites and knocks: stripped state at the membership event (or what federation sent with it). Returns how many were added. */
  private async buildStripped(ctx: SyncContext, rows: MembershipRow[], kind: 'invite' | 'knock'): Promise<number> {
    const stripped = await strippedStateFor(this.db, this.deps.rooms, ctx.userId, rows, kind);
    for (const [roomId, events] of stripped) {
      if (kind === 'invite') ctx.response.invite.set(roomId, { invite_state: { events } });
      else ctx.response.knock.set(roomId, { knock_state: { events } });
    }
    return stripped.size;
  }
}


function hasSelection(f: RoomEventFilter): boolean {
  return Boolean(f.types || f.not_types || f.senders || f.not_senders || f.rooms || f.not_rooms || f.contains_url !== undefined);
}

function hasMemberEvent(b: { timeline: BuiltTimeline; statePdus: StoredEvent[] }): boolean {
  return b.timeline.events.some((e) => e.pdu.type === 'm.room.member') || b.statePdus.some((e) => e.pdu.type === 'm.room.member');
}
