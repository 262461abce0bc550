import type { Logger } from 'pino';
import { ignoredUsersOf } from '../../directory/ignoredUsers.js';
import { toClientEvent, type ClientEvent } from '../../rooms/clientEvent.js';
import { ROOM_VERSIONS } from '../../rooms/roomVersions.js';
import { getRoom } from '../../storage/repositories/rooms.js';
import { encodePaginationToken } from '../../rooms/paginationToken.js';
import type { RoomService } from '../../rooms/roomService.js';
import type { Db } from '../../storage/database.js';
import { lastRoomEventAtStream, type StoredEvent } from '../../storage/repositories/events.js';
import { heroCandidates, latestEventIdsPerRoom, memberCounts } from '../../storage/repositories/sync.js';
import { parseStateMapKey, stateMapKey } from '../../types/pdu.js';
import { mapLimit } from '../../util/mapLimit.js';
import type { LazyMembersCache } from '../lazyMembers.js';
import type { NotificationCounter } from '../provider.js';
import type { StrippedStateEvent } from '../response.js';
import { strippedStateFor } from '../strippedState.js';
import { encodeSyncToken, type SyncPositions } from '../token.js';
import type { SentRoom } from './connections.js';
import type { RoomConfig } from './request.js';
import { parseRequiredState, selectionOf, selects, serializeRequiredState } from './requiredState.js';
import type { UserRoom } from './roomLists.js';

// One room's entry in a sliding sync answer (MSC4186 "rooms", as Synapse's get_room_sync_data builds it):
// whole the first time the connection sees the room, afterwards only what changed since it was last sent.

export interface Hero {
  user_id: string;
  displayname?: string;
  avatar_url?: string;
}

export interface RoomEntry {
  name?: string;
  avatar?: string;
  heroes?: Hero[];
  initial?: true;
  unstable_expanded_timeline?: true;
  required_state?: ClientEvent[];
  timeline?: ClientEvent[];
  limited?: boolean;
  prev_batch?: string;
  num_live?: number;
  is_dm?: true;
  invite_state?: StrippedStateEvent[];
  joined_count?: number;
  invited_count?: number;
  notification_count: number;
  highlight_count: number;
  bump_stamp?: number;
}

export interface RoomInput {
  roomId: string;
  member: UserRoom;
  config: RoomConfig;
  /** What the connection was sent of this room before, if anything. */
  previous: SentRoom | undefined;
  isDm: boolean;
  stamp: number | undefined;
}

export interface BuildContext {
  userId: string;
  deviceId: string | undefined;
  /** Key of the connection in the lazy-members cache. */
  lazyKey: string;
  /** The connection's timeline position; undefined on a new connection. */
  since: number | undefined;
  to: SyncPositions;
}

export interface RoomBuilderDeps {
  db: () => Db;
  logger: Logger;
  rooms: Pick<RoomService, 'events' | 'state' | 'reader'>;
  lazyMembers: LazyMembersCache;
  counts: NotificationCounter;
}

/** Rooms built at once (their reads overlap on PostgreSQL's pool; SQLite queues them anyway). */
const CONCURRENCY = 8;

interface Plan {
  input: RoomInput;
  initial: boolean;
  /** Expanded timeline limit: the newest events regardless of what was sent (Synapse's unstable_expanded_timeline). */
  expanded: boolean;
  /** Exclusive lower bound of what is new to the connection. */
  fromBound: number;
  /** Inclusive upper bound: now, or the user's leave or ban. */
  upTo: number;
  timeline: boolean;
}

export class RoomBuilder {
  constructor(private readonly deps: RoomBuilderDeps) {}

  /** Entries for the rooms with something to send (every room on a new connection); `failed` could not be built. */
  async build(ctx: BuildContext, inputs: readonly RoomInput[], failed: Set<string>): Promise<Map<string, RoomEntry>> {
    const out = new Map<string, RoomEntry>();
    if (!inputs.length) return out;
    const db = this.deps.db();
    const plans = inputs.map((input) => this.plan(ctx, input));
    const timelined = plans.filter((p) => p.timeline);
    const pages = await latestEventIdsPerRoom(
      db,
      timelined.map((p) => ({ roomId: p.input.roomId, after: p.initial || p.expanded ? 0 : p.fromBound, upTo: p.upTo })),
      Math.max(0, ...timelined.map((p) => p.input.config.timelineLimit)) + 1,
    );
    const ignored = await ignoredUsersOf(db, ctx.userId);
    const invites = plans.filter((p) => p.input.member.membership === 'invite' || p.input.member.membership === 'knock');
    const stripped = new Map<string, StrippedStateEvent[]>();
    for (const kind of ['invite', 'knock'] as const) {
      const rows = invites.filter((p) => p.input.member.membership === kind && (p.initial || p.input.member.streamOrdering > p.fromBound));
      for (const [id, s] of await strippedStateFor(db, this.deps.rooms, ctx.userId, rows.map((p) => ({ roomId: p.input.roomId, eventId: p.input.member.eventId })), kind)) stripped.set(id, s);
    }

    const attempted = await mapLimit(plans, CONCURRENCY, async (plan) => {
      const { roomId } = plan.input;
      if (!plan.timeline && (plan.input.member.membership === 'invite' || plan.input.member.membership === 'knock')) {
        return { plan, entry: this.inviteEntry(plan, stripped.get(roomId)) };
      }
      const page = pages.get(roomId) ?? [];
      try {
        return { plan, entry: await this.joinedEntry(ctx, plan, page, ignored) };
      } catch (err) {
        // One broken room (say, of a room version this server cannot read) must not fail the whole answer.
        this.deps.logger.warn({ err, roomId }, 'sliding sync: room left out of the answer');
        failed.add(roomId);
        return undefined;
      }
    });
    const built = attempted.filter((b): b is NonNullable<typeof b> => b !== undefined);

    // Counts and heroes in a batch for the rooms that show them.
    const countRooms = built.filter((b) => b.entry.wantsCounts).map((b) => b.plan.input.roomId);
    const heroRooms = built.filter((b) => b.entry.wantsHeroes).map((b) => b.plan.input.roomId);
    const joined = built.filter((b) => b.plan.input.member.membership === 'join').map((b) => b.plan.input.roomId);
    const [counts, heroIds, unread] = await Promise.all([
      countRooms.length ? memberCounts(db, countRooms) : new Map<string, { joined: number; invited: number }>(),
      heroRooms.length ? heroCandidates(db, heroRooms, ctx.userId) : new Map<string, string[]>(),
      joined.length ? this.deps.counts(ctx.userId, joined, { upTo: ctx.to.timeline, threaded: false }) : new Map(),
    ]);
    for (const { plan, entry: b } of built) {
      const roomId = plan.input.roomId;
      const { entry } = b;
      const c = counts.get(roomId);
      if (b.wantsCounts && c) {
        entry.joined_count = c.joined;
        entry.invited_count = c.invited;
      }
      if (b.wantsHeroes) {
        const heroes = await this.heroes(db, heroIds.get(roomId) ?? [], b.state);
        if (heroes.length) entry.heroes = heroes;
      }
      const u = unread.get(roomId);
      entry.notification_count = u?.notification_count ?? 0;
      entry.highlight_count = u?.highlight_count ?? 0;
      // Synapse's RoomResult.__bool__: a room nothing happened to is left out of an incremental answer.
      const news =
        entry.initial || entry.name !== undefined || entry.avatar !== undefined || (entry.heroes?.length ?? 0) > 0 ||
        entry.joined_count !== undefined || (entry.required_state?.length ?? 0) > 0 || (entry.timeline?.length ?? 0) > 0 ||
        (entry.invite_state?.length ?? 0) > 0;
      if (news || ctx.since === undefined) out.set(roomId, entry);
    }
    return out;
  }

  private plan(ctx: BuildContext, input: RoomInput): Plan {
    const { member, previous, config } = input;
    let initial = true;
    let fromBound = 0;
    if (ctx.since !== undefined && !member.newlyJoined && previous) {
      initial = false;
      fromBound = previous.status === 'live' ? ctx.since : (previous.since ?? 0);
    }
    const left = member.membership === 'leave' || member.membership === 'ban';
    const timeline = config.timelineLimit > 0 && (member.membership === 'join' || left);
    return {
      input,
      initial,
      expanded: !initial && previous !== undefined && previous.timelineLimit < config.timelineLimit,
      fromBound,
      upTo: left ? member.streamOrdering : ctx.to.timeline,
      timeline,
    };
  }

  private inviteEntry(plan: Plan, stripped: StrippedStateEvent[] | undefined): BuiltEntry {
    const entry: RoomEntry = { notification_count: 0, highlight_count: 0 };
    if (plan.initial) entry.initial = true;
    if (stripped?.length) {
      entry.invite_state = stripped;
      const name = stripped.find((e) => e.type === 'm.room.name' && e.state_key === '')?.content.name;
      if (typeof name === 'string' && name !== '') entry.name = name;
      const avatar = stripped.find((e) => e.type === 'm.room.avatar' && e.state_key === '')?.content.url;
      if (typeof avatar === 'string' && avatar !== '') entry.avatar = avatar;
    }
    if (plan.input.isDm) entry.is_dm = true;
    if (plan.input.stamp !== undefined) entry.bump_stamp = plan.input.stamp;
    return { entry, wantsCounts: false, wantsHeroes: false, state: new Map() };
  }

  private async joinedEntry(ctx: BuildContext, plan: Plan, page: ReadonlyArray<{ eventId: string }>, ignored: ReadonlySet<string>): Promise<BuiltEntry> {
    const db = this.deps.db();
    const { events: eventStore, state: stateStore, reader } = this.deps.rooms;
    const { input } = plan;
    const { roomId, config, member } = input;
    const viewer = { userId: ctx.userId, deviceId: ctx.deviceId };
    const entry: RoomEntry = { notification_count: 0, highlight_count: 0 };
    if (plan.initial) entry.initial = true;

    // Timeline: the newest `timeline_limit` events in range, oldest first.
    let timeline: StoredEvent[] = [];
    let limited = false;
    /** The newest event at the upper bound, when the timeline page read it anyway. */
    let newest: StoredEvent | undefined;
    if (plan.timeline) {
      const limit = config.timelineLimit;
      const ids = page.slice(0, limit + 1).map((x) => x.eventId);
      limited = ids.length > limit;
      const raw = [...(await eventStore.getMany(db, ids.slice(0, limit))).values()].sort((a, b) => b.streamOrdering - a.streamOrdering);
      const oldest = raw[raw.length - 1];
      newest = raw[0];
      timeline = (await reader.filterVisible(ctx.userId, roomId, raw, ignored)).reverse();
      entry.limited = limited;
      entry.prev_batch = oldest
        ? encodePaginationToken({ depth: oldest.depth, stream: oldest.streamOrdering - 1 })
        : encodeSyncToken({ ...ctx.to, timeline: plan.upTo });
      entry.num_live = ctx.since === undefined ? 0 : timeline.filter((e) => e.streamOrdering > ctx.since!).length;
      if (plan.expanded) entry.unstable_expanded_timeline = true;
    }

    // State as of the upper bound, and (for a room sent before) what changed since then.
    const upperGroup = newest
      ? newest.stateAfter
      : member.membership === 'join'
        ? ((await lastRoomEventAtStream(db, roomId, plan.upTo))?.stateAfter ?? null)
        : ((await eventStore.get(db, member.eventId))?.stateAfter ?? null);
    const state = upperGroup === null ? new Map<string, string>() : await stateStore.stateIds(db, upperGroup);
    const deltas = new Map<string, string>();
    if (!plan.initial) {
      const sinceGroup = (await lastRoomEventAtStream(db, roomId, plan.fromBound))?.stateAfter ?? null;
      if (sinceGroup !== upperGroup) {
        const before = sinceGroup === null ? new Map<string, string>() : await stateStore.stateIds(db, sinceGroup);
        for (const [key, id] of state) if (before.get(key) !== id) deltas.set(key, id);
      }
      if (member.newlyLeft) deltas.set(stateMapKey('m.room.member', ctx.userId), member.eventId);
    }

    const selection = selectionOf(config.requiredState, ctx.userId);
    const lazyUsers = new Set<string>();
    if (selection.lazyMembers) {
      for (const e of timeline) {
        lazyUsers.add(e.pdu.sender);
        if (e.pdu.type === 'm.room.member' && typeof e.pdu.state_key === 'string') lazyUsers.add(e.pdu.state_key);
      }
    }
    const wanted = new Map<string, string>();
    const take = (key: string, id: string | undefined) => {
      if (id !== undefined) wanted.set(key, id);
    };
    if (plan.initial) {
      for (const [key, id] of state) {
        const [type, stateKey] = parseStateMapKey(key);
        if (selects(selection, type, stateKey) || (type === 'm.room.member' && lazyUsers.has(stateKey))) take(key, id);
      }
    } else {
      for (const [key, id] of deltas) {
        const [type, stateKey] = parseStateMapKey(key);
        // Lazy members: every membership change while the timeline is complete, the timeline's people otherwise.
        const lazyMember = selection.lazyMembers && type === 'm.room.member' && (!limited || lazyUsers.has(stateKey));
        if (selects(selection, type, stateKey) || lazyMember) take(key, id);
      }
      // State the configuration asks for now that it did not before.
      const previous = input.previous;
      if (previous && previous.requiredState !== serializeRequiredState(config.requiredState)) {
        const before = selectionOf(parseRequiredState(previous.requiredState), ctx.userId);
        for (const [key, id] of state) {
          const [type, stateKey] = parseStateMapKey(key);
          if (selects(selection, type, stateKey) && !selects(before, type, stateKey)) take(key, id);
        }
      }
      // The timeline's people the connection was not sent yet.
      for (const user of lazyUsers) {
        const key = stateMapKey('m.room.member', user);
        const id = state.get(key);
        if (id && !this.deps.lazyMembers.alreadySent(ctx.userId, ctx.lazyKey, roomId, user, id)) take(key, id);
      }
    }

    const changed = (type: string) => plan.initial || deltas.has(stateMapKey(type, ''));
    const membershipChanged = plan.initial || member.newlyLeft || [...deltas.keys()].some((k) => parseStateMapKey(k)[0] === 'm.room.member');
    const nameId = changed('m.room.name') ? state.get(stateMapKey('m.room.name', '')) : undefined;
    const avatarId = changed('m.room.avatar') ? state.get(stateMapKey('m.room.avatar', '')) : undefined;
    const loaded = await eventStore.getMany(db, [...wanted.values(), ...[nameId, avatarId].filter((x): x is string => x !== undefined)]);
    const name = nameId ? loaded.get(nameId)?.pdu.content?.name : undefined;
    if (typeof name === 'string' && name !== '') entry.name = name;
    const avatar = avatarId ? loaded.get(avatarId)?.pdu.content?.url : undefined;
    if (typeof avatar === 'string' && avatar !== '') entry.avatar = avatar;

    const requiredEvents = [...wanted.values()].map((id) => loaded.get(id)).filter((e): e is StoredEvent => e !== undefined);
    const known = await roomExists(db, roomId);
    const format = (events: StoredEvent[], bundle: boolean) =>
      // A room this server never had (a rejected remote invite): only the user's own leave, formatted by itself.
      known ? reader.format(events, viewer, { includeRoomId: false, bundleAggregations: bundle }) : Promise.resolve(events.map(standalone));
    const [timelineOut, stateOut] = await Promise.all([
      timeline.length ? format(timeline, true) : Promise.resolve([]),
      requiredEvents.length ? format(requiredEvents, false) : Promise.resolve([]),
    ]);
    if (timelineOut.length) entry.timeline = timelineOut;
    if (stateOut.length) entry.required_state = stateOut;
    const sentMembers = [...requiredEvents, ...timeline].filter((e) => e.pdu.type === 'm.room.member' && typeof e.pdu.state_key === 'string');
    this.deps.lazyMembers.remember(ctx.userId, ctx.lazyKey, roomId, sentMembers.map((e) => ({ member: e.pdu.state_key!, eventId: e.eventId })));

    if (input.isDm) entry.is_dm = true;
    if (input.stamp !== undefined) entry.bump_stamp = input.stamp;
    const joined = member.membership === 'join';
    // Heroes name an unnamed room, without the user (Synapse: only m.room.name counts as a name here).
    const named = nameId !== undefined ? entry.name !== undefined : state.has(stateMapKey('m.room.name', '')) && (await this.hasName(db, state));
    const wantsHeroes = joined && membershipChanged && !named;
    return { entry, wantsCounts: joined && membershipChanged, wantsHeroes, state };
  }

  private async hasName(db: Db, state: ReadonlyMap<string, string>): Promise<boolean> {
    const id = state.get(stateMapKey('m.room.name', ''));
    if (!id) return false;
    const name = (await this.deps.rooms.events.get(db, id))?.pdu.content?.name;
    return typeof name === 'string' && name !== '';
  }

  private async heroes(db: Db, userIds: readonly string[], state: ReadonlyMap<string, string>): Promise<Hero[]> {
    const ids = userIds.map((u) => state.get(stateMapKey('m.room.member', u))).filter((x): x is string => x !== undefined);
    const events = await this.deps.rooms.events.getMany(db, ids);
    const out: Hero[] = [];
    for (const userId of userIds) {
      const id = state.get(stateMapKey('m.room.member', userId));
      const content = id ? events.get(id)?.pdu.content : undefined;
      const hero: Hero = { user_id: userId };
      if (typeof content?.displayname === 'string') hero.displayname = content.displayname;
      if (typeof content?.avatar_url === 'string') hero.avatar_url = content.avatar_url;
      out.push(hero);
    }
    return out;
  }
}

/** An event of a room without a stored version, in the client format of the default room version. */
function standalone(e: StoredEvent): ClientEvent {
  return toClientEvent(e.pdu, ROOM_VERSIONS.get('10')!, { eventId: e.eventId, now: Date.now(), includeRoomId: false });
}

async function roomExists(db: Db, roomId: string): Promise<boolean> {
  return (await getRoom(db, roomId)) !== undefined;
}

interface BuiltEntry {
  entry: RoomEntry;
  wantsCounts: boolean;
  wantsHeroes: boolean;
  state: ReadonlyMap<string, string>;
}
