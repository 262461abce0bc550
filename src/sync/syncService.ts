import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { roomMembers, usersSharingRooms } from '../storage/repositories/state.js';
import { membershipAtStream, userMemberships, type MembershipRow } from '../storage/repositories/sync.js';
import { AccountDataService } from './accountDataService.js';
import { roomAllowed, type SyncFilter } from './filter.js';
import { FilterService } from './filterService.js';
import type { NotificationCounter, SyncContext, SyncProvider } from './provider.js';
import { AccountDataProvider } from './providers/accountData.js';
import { EmptyProvider } from './providers/empty.js';
import { PeeksProvider } from './providers/peeks.js';
import { PeekService } from './peeks.js';
import { RoomsProvider } from './providers/rooms.js';
import { SyncResponseBuilder, type SyncResponse } from './response.js';
import { SYNC_TOPICS, encodeSyncToken, maxPositions, parseSyncToken, zeroPositions, type SyncPositions, type SyncTopic } from './token.js';

export interface SyncRequest {
  userId: string;
  deviceId: string | undefined;
  /** The `since` token; undefined for an initial sync. */
  since?: string | undefined;
  /** Long-poll for up to this many milliseconds when nothing is new. */
  timeoutMs?: number | undefined;
  /** The `filter` parameter: a filter id or inline JSON. */
  filter?: string | undefined;
  fullState?: boolean | undefined;
  /** Waking the request early, e.g. when the client goes away. */
  signal?: AbortSignal | undefined;
}

const MAX_TIMEOUT_MS = 5 * 60_000;

/**
 * GET /sync: one provider per topic (docs/architecture.md, "Sync"). Positions are read at the start of a
 * request; if an incremental sync finds nothing the request waits on the notifier and recomputes.
 */
export class SyncService {
  readonly filters: FilterService;
  readonly accountData: AccountDataService;
  readonly peeks: PeekService;
  private readonly providers = new Map<SyncTopic, SyncProvider>();
  private accountDataProvider!: AccountDataProvider;

  /** Global account data a whole sync carries even when none is stored (the push rules, from src/push). */
  setAccountDataDefaults(fn: AccountDataProvider['defaults']): void {
    this.accountDataProvider.defaults = fn;
  }

  constructor(private readonly deps: ServiceDeps & { rooms: RoomService }) {
    this.filters = new FilterService(deps.db);
    this.accountData = new AccountDataService(deps);
    this.peeks = new PeekService(deps);
    // Registration order is run order: rooms first, so others can decorate room entries.
    const rooms = new RoomsProvider({ db: deps.db, rooms: deps.rooms, now: () => deps.clock.now() });
    this.registerProvider(rooms);
    this.registerProvider(new PeeksProvider({ db: deps.db, rooms }));
    this.registerProvider((this.accountDataProvider = new AccountDataProvider({ db: deps.db })));
    for (const topic of SYNC_TOPICS) if (!this.providers.has(topic)) this.registerProvider(new EmptyProvider(topic));
  }

  /** Adds or replaces the provider of a topic (a replaced provider keeps its place in the run order). */
  /** Where `unread_notifications` come from; until push is wired in every room reads 0. */
  setNotificationCounter(counter: NotificationCounter): void {
    this.notificationCounter = counter;
  }

  private notificationCounter: NotificationCounter = async () => new Map();

  registerProvider(provider: SyncProvider): void {
    this.providers.set(provider.topic, provider);
  }

  /** The newest position of every topic. */
  async currentPositions(): Promise<SyncPositions> {
    const out = zeroPositions();
    const entries = [...this.providers.values()];
    const values = await Promise.all(entries.map((p) => p.latest()));
    entries.forEach((p, i) => (out[p.topic] = values[i]!));
    return out;
  }

  async currentToken(): Promise<string> {
    return encodeSyncToken(await this.currentPositions());
  }

  async sync(req: SyncRequest): Promise<SyncResponse> {
    const since = req.since !== undefined && req.since !== '' ? parseSyncToken(req.since) : undefined;
    const filter = await this.filters.resolveParam(req.userId, req.filter);
    const fullState = req.fullState === true;
    const timeout = Math.min(Math.max(0, req.timeoutMs ?? 0), MAX_TIMEOUT_MS);
    const deadline = this.deps.clock.now() + timeout;

    for (;;) {
      // Events in the rooms this device peeks into wake it too (a new peek wakes the user).
      const peeked = since !== undefined && !fullState && deadline > this.deps.clock.now() ? await this.peeks.roomsOf(req.userId, req.deviceId) : [];
      // The waiter is registered before positions are read, so a commit after the read always wakes it.
      const abort = new AbortController();
      const onOuterAbort = () => abort.abort();
      req.signal?.addEventListener('abort', onOuterAbort);
      const remaining = deadline - this.deps.clock.now();
      const waits = since !== undefined && !fullState && remaining > 0 && !req.signal?.aborted;
      const wake = waits ? this.deps.notifier.wait(req.userId, remaining, abort.signal, peeked) : undefined;
      try {
        const { response, changed } = await this.compute(req, since, filter, fullState);
        if (!wake || changed) return response;
        await wake;
        if (req.signal?.aborted || this.deps.notifier.isClosed || this.deps.clock.now() >= deadline) {
          // One last look: something may have arrived with the wake-up at the deadline.
          const last = await this.compute(req, since, filter, fullState);
          return last.response;
        }
      } finally {
        abort.abort();
        req.signal?.removeEventListener('abort', onOuterAbort);
      }
    }
  }

  /**
   * What the given topics add over (since, to], as an incremental /sync would show it: the legacy event
   * stream (GET /events) reads its non-timeline topics through the same providers.
   */
  async collect(
    req: { userId: string; deviceId: string | undefined },
    since: SyncPositions,
    to: SyncPositions,
    topics: readonly SyncTopic[],
    peek?: readonly string[],
  ): Promise<SyncResponseBuilder> {
    const ctx = this.context(req, {}, false, since, to, peek);
    for (const topic of topics) await this.providers.get(topic)?.incremental(ctx, since[topic], to[topic]);
    return ctx.response;
  }

  /**
   * Sliding sync extensions (MSC4186) through the same providers: each topic over (from, to] — or whole when
   * its `from` is undefined — for exactly `rooms`; `fresh` rooms (new to the connection) get everything, as
   * rooms newly joined do in /sync. `since` is the connection's position (device lists read its timeline).
   */
  async collectForRooms(
    req: { userId: string; deviceId: string | undefined },
    topics: ReadonlyMap<SyncTopic, number | undefined>,
    since: SyncPositions | undefined,
    to: SyncPositions,
    rooms: readonly string[],
    fresh: Iterable<string>,
  ): Promise<SyncContext> {
    const ctx = this.context(req, {}, false, since, to, rooms);
    for (const id of fresh) ctx.newlyJoined.add(id);
    // Entries exist up front, so room account data of a whole collection lands in them.
    for (const id of rooms) ctx.response.joinedRoom(id);
    for (const [topic, from] of topics) {
      const provider = this.providers.get(topic);
      if (!provider) continue;
      if (from === undefined) await provider.complete(ctx, to[topic]);
      else await provider.incremental(ctx, from, to[topic]);
    }
    return ctx;
  }

  /** Unread counts as /sync gives them, for the sliding sync rooms. */
  get unreadCounts(): NotificationCounter {
    return (userId, roomIds, options) => this.notificationCounter(userId, roomIds, options);
  }

  private async compute(
    req: SyncRequest,
    since: SyncPositions | undefined,
    filter: SyncFilter,
    fullState: boolean,
  ): Promise<{ response: SyncResponse; changed: boolean }> {
    const latest = await this.currentPositions();
    const to = since ? maxPositions(since, latest) : latest;
    const ctx = this.context(req, filter, fullState, since, to);
    let changed = false;
    for (const provider of this.providers.values()) {
      if (since === undefined) await provider.complete(ctx, to[provider.topic]);
      else if (await provider.incremental(ctx, since[provider.topic], to[provider.topic])) changed = true;
    }
    await this.fillUnreadCounts(ctx);
    return { response: ctx.response.build(encodeSyncToken({ ...to, ...ctx.nextPositions })), changed };
  }

  /** Every joined room in the response carries its counts, whichever provider put it there. */
  private async fillUnreadCounts(ctx: SyncContext): Promise<void> {
    const roomIds = [...ctx.response.join.keys()];
    if (!roomIds.length) return;
    const threaded = ctx.filter.room?.timeline?.unread_thread_notifications === true;
    const counts = await this.notificationCounter(ctx.userId, roomIds, { upTo: ctx.to.timeline, threaded });
    for (const roomId of roomIds) {
      const room = ctx.response.join.get(roomId)!;
      const c = counts.get(roomId);
      room.unread_notifications = { notification_count: c?.notification_count ?? 0, highlight_count: c?.highlight_count ?? 0 };
      if (threaded && c?.threads && Object.keys(c.threads).length) room.unread_thread_notifications = c.threads;
    }
  }

  /** `peek`: rooms read instead of the joined ones (the legacy stream's `room_id`), their members as presence peers. */
  private context(
    req: { userId: string; deviceId: string | undefined },
    filter: SyncFilter,
    fullState: boolean,
    since: SyncPositions | undefined,
    to: SyncPositions,
    peek?: readonly string[],
  ): SyncContext {
    const db = this.deps.db.knex;
    let memberships: Promise<Map<string, MembershipRow>> | undefined;
    const loadMemberships = async (): Promise<Map<string, MembershipRow>> => {
      const out = new Map<string, MembershipRow>();
      for (const row of await userMemberships(db, req.userId)) {
        if (row.streamOrdering <= to.timeline) {
          out.set(row.roomId, row);
          continue;
        }
        // Changed after this request's position: use the membership as of the position.
        const atTo = await membershipAtStream(db, row.roomId, req.userId, to.timeline);
        if (atTo) out.set(row.roomId, atTo);
      }
      return out;
    };
    return {
      userId: req.userId,
      deviceId: req.deviceId,
      filter,
      fullState,
      since,
      to,
      response: new SyncResponseBuilder(),
      newlyJoined: new Set(),
      nextPositions: {},
      memberships: () => (memberships ??= loadMemberships()),
      joinedRoomIds: async () => {
        if (peek) return [...peek];
        const all = await (memberships ??= loadMemberships());
        return [...all.values()].filter((m) => m.membership === 'join' && roomAllowed(filter, m.roomId)).map((m) => m.roomId);
      },
      presencePeers: async () => {
        if (!peek) return usersSharingRooms(db, req.userId);
        const members = await Promise.all(peek.map((roomId) => roomMembers(db, roomId, ['join'])));
        return [...new Set(members.flat())];
      },
    };
  }
}

export type { SyncProvider, SyncContext } from './provider.js';
export type { SyncResponse } from './response.js';
