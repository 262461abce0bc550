import type { DeviceKeysService } from '../../e2ee/deviceKeysService.js';
import type { RoomService } from '../../rooms/roomService.js';
import type { ServiceDeps } from '../../serviceDeps.js';
import { deleteConnectionsOf } from '../../storage/repositories/slidingSync.js';
import { roomsWithEventsInRange } from '../../storage/repositories/sync.js';
import { LazyMembersCache } from '../lazyMembers.js';
import type { SyncService } from '../syncService.js';
import { SYNC_TOPICS, encodeSyncToken, maxPositions, zeroPositions, type SyncPositions } from '../token.js';
import { BumpStamps } from './bumpStamps.js';
import { ConnectionStore, encodePos, type ConnectionState, type SentRoom } from './connections.js';
import { SlidingExtensions } from './extensions.js';
import { toRequest, type SlidingSyncBody, type SlidingSyncRequest } from './request.js';
import { serializeRequiredState } from './requiredState.js';
import { RoomBuilder, type RoomEntry, type RoomInput } from './roomBuilder.js';
import { RoomLists, type InterestedRooms, type ListOutcome } from './roomLists.js';

// MSC4186 Simplified Sliding Sync (docs/architecture.md, "Sliding sync"): room lists with windows, room
// subscriptions and extensions over one connection, answered relative to what the connection was sent.

export interface SlidingSyncParams {
  userId: string;
  deviceId: string | undefined;
  pos: string | undefined;
  timeoutMs: number | undefined;
  body: SlidingSyncBody;
}

export interface SlidingSyncResponse {
  pos: string;
  lists?: Record<string, ListOutcome>;
  rooms: Record<string, RoomEntry>;
  extensions: Record<string, unknown>;
}

const MAX_TIMEOUT_MS = 5 * 60_000;

interface Computed {
  response: Omit<SlidingSyncResponse, 'pos'>;
  news: boolean;
  to: SyncPositions;
  rooms: Map<string, SentRoom>;
}

export class SlidingSyncService {
  private readonly connections: ConnectionStore;
  private readonly lists: RoomLists;
  private readonly builder: RoomBuilder;
  private readonly extensions: SlidingExtensions;
  private readonly lazyMembers: LazyMembersCache;

  constructor(private readonly deps: ServiceDeps & { rooms: RoomService; sync: SyncService; deviceKeys: DeviceKeysService }) {
    const db = () => deps.db.knex;
    this.connections = new ConnectionStore({ db: deps.db, now: () => deps.clock.now() });
    this.lists = new RoomLists({ db, now: () => deps.clock.now(), rooms: deps.rooms, bumpStamps: new BumpStamps(db) });
    this.lazyMembers = new LazyMembersCache(() => deps.clock.now());
    this.builder = new RoomBuilder({ db, logger: deps.logger, rooms: deps.rooms, lazyMembers: this.lazyMembers, counts: deps.sync.unreadCounts });
    this.extensions = new SlidingExtensions({ db, sync: deps.sync, deviceKeys: deps.deviceKeys });
  }

  async sync(params: SlidingSyncParams, signal?: AbortSignal): Promise<SlidingSyncResponse> {
    const request = toRequest(params.body);
    const key = { userId: params.userId, deviceId: params.deviceId ?? '', connId: request.connId };
    const conn = await this.connections.open(key, params.pos);
    const lazyKey = `${key.deviceId}\u0000${key.connId}`;
    if (params.pos === undefined || params.pos === '') {
      this.lazyMembers.reset(params.userId, lazyKey);
      await this.connections.expire();
    }
    const timeout = Math.min(Math.max(0, params.timeoutMs ?? 0), MAX_TIMEOUT_MS);
    const deadline = this.deps.clock.now() + timeout;
    const keepsState = request.lists.length > 0 || request.subscriptions.size > 0;

    for (;;) {
      const remaining = deadline - this.deps.clock.now();
      const waits = conn.since !== undefined && remaining > 0 && !signal?.aborted;
      // The waiter is registered before positions are read, so a commit after the read always wakes it.
      const abort = new AbortController();
      const onOuterAbort = () => abort.abort();
      signal?.addEventListener('abort', onOuterAbort);
      const wake = waits ? this.deps.notifier.wait(params.userId, remaining, abort.signal) : undefined;
      try {
        let computed = await this.compute(params, request, conn, lazyKey);
        if (wake && !computed.news) {
          await wake;
          if (!(signal?.aborted || this.deps.notifier.isClosed || this.deps.clock.now() >= deadline)) continue;
          // One last look: something may have arrived with the wake-up at the deadline.
          computed = await this.compute(params, request, conn, lazyKey);
        }
        const position = keepsState ? await this.connections.save(key, conn, computed.rooms) : conn.position;
        return { pos: encodePos(position, encodeSyncToken(computed.to)), ...computed.response };
      } finally {
        abort.abort();
        signal?.removeEventListener('abort', onOuterAbort);
      }
    }
  }

  /** A device's connections go with it. */
  async onDevicesDeleted(userId: string, deviceIds: readonly string[]): Promise<void> {
    await deleteConnectionsOf(this.deps.db.knex, userId, deviceIds);
  }

  private async compute(params: SlidingSyncParams, request: SlidingSyncRequest, conn: ConnectionState, lazyKey: string): Promise<Computed> {
    const latest = await this.deps.sync.currentPositions();
    const since = conn.since ? bounded(conn.since, latest) : undefined;
    const to = since ? maxPositions(since, latest) : latest;
    const interested = await this.lists.compute(params.userId, request, since?.timeline, to.timeline);

    const updated = since && since.timeline < to.timeline ? await roomsWithEventsInRange(this.deps.db.knex, since.timeline, to.timeline) : new Set<string>();
    const inputs = this.roomsToSend(interested, conn, since, updated);
    const failed = new Set<string>();
    // A retried pos: members sent in the answer that never arrived go out again.
    if (since) this.lazyMembers.resumeFrom(params.userId, lazyKey, since.timeline);
    const entries = await this.builder.build({ userId: params.userId, deviceId: params.deviceId, lazyKey, since: since?.timeline, to }, inputs, failed);
    this.lazyMembers.answered(params.userId, lazyKey, to.timeline);

    // What the connection has after this answer.
    const rooms = new Map(conn.rooms);
    const sent = new Set<string>();
    for (const input of inputs) {
      if (failed.has(input.roomId)) continue;
      sent.add(input.roomId);
      rooms.set(input.roomId, { status: 'live', timelineLimit: input.config.timelineLimit, requiredState: serializeRequiredState(input.config.requiredState) });
    }
    // Rooms that moved on while out of every window: the connection has them only up to `since`.
    if (since) {
      for (const [roomId, room] of conn.rooms) {
        if (room.status === 'live' && !sent.has(roomId) && updated.has(roomId)) rooms.set(roomId, { ...room, status: 'previously', since: since.timeline });
      }
    }

    const fresh = new Set([...entries].filter(([, e]) => e.initial).map(([id]) => id));
    const { outcome, toDevicePosition } = await this.extensions.collect({
      userId: params.userId,
      deviceId: params.deviceId,
      request: request.extensions,
      since,
      to,
      interested,
      freshRooms: fresh,
      timelineIds: new Map([...entries].map(([id, e]) => [id, new Set((e.timeline ?? []).map((ev) => ev.event_id))])),
    });
    const response: Omit<SlidingSyncResponse, 'pos'> = {
      ...(interested.lists.size ? { lists: Object.fromEntries(interested.lists) } : {}),
      rooms: Object.fromEntries(entries),
      extensions: outcome.body,
    };
    return { response, news: entries.size > 0 || outcome.news, to: toDevicePosition === undefined ? to : { ...to, toDevice: toDevicePosition }, rooms };
  }

  /** Synapse's _filter_relevant_rooms_to_send: rooms new to the connection, behind, reconfigured or with news. */
  private roomsToSend(interested: InterestedRooms, conn: ConnectionState, since: SyncPositions | undefined, updated: ReadonlySet<string>): RoomInput[] {
    const out: RoomInput[] = [];
    for (const [roomId, config] of interested.relevant) {
      const member = interested.memberships.get(roomId)!;
      const previous = since ? conn.rooms.get(roomId) : undefined;
      const send =
        !since ||
        !previous ||
        previous.status === 'previously' ||
        previous.timelineLimit < config.timelineLimit ||
        previous.requiredState !== serializeRequiredState(config.requiredState) ||
        updated.has(roomId) ||
        member.streamOrdering > since.timeline;
      if (!send) continue;
      out.push({ roomId, member, config, previous, isDm: interested.dmRooms.has(roomId), stamp: interested.stamps.get(roomId) });
    }
    return out;
  }
}

/** A position from the client never runs ahead of the server (a forged or stale-process token). */
function bounded(since: SyncPositions, latest: SyncPositions): SyncPositions {
  const out = zeroPositions();
  for (const t of SYNC_TOPICS) out[t] = Math.min(since[t], latest[t]);
  return out;
}

