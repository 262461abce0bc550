import { MatrixError } from '../errors.js';
import { toClientEvent, type ClientEvent } from '../rooms/clientEvent.js';
import type { RoomService, StoredEvent, WriteResult } from '../rooms/roomService.js';
import { getRoomVersion, type RoomVersion } from '../rooms/roomVersions.js';
import type { ServiceDeps } from '../serviceDeps.js';
import type { Db } from '../storage/database.js';
import { listNotifications, pruneNotifications, roomsWithNotifications } from '../storage/repositories/notifications.js';
import { getRoom } from '../storage/repositories/rooms.js';
import type { AccountDataService } from '../sync/accountDataService.js';
import type { UserService } from '../users/userService.js';
import { notificationCounts, type NotificationCountOptions, type RoomNotificationCounts } from './counts.js';
import type { DeliveryOptions } from './delivery.js';
import { NotificationProcessor } from './processor.js';
import { PusherService } from './pusherService.js';
import { PushRulesService } from './rulesService.js';

export { notificationCounts, type RoomNotificationCounts, type UnreadCounts, type NotificationCountOptions } from './counts.js';

/**
 * Where each room's read position is: the stream ordering of the event the user's read receipt points at.
 * Rooms missing from the answer count as never read.
 */
export type ReadPositions = (db: Db, userId: string, roomIds: readonly string[]) => Promise<Map<string, number>>;

export interface PushOptions {
  /** Serve the legacy mention rules removed from the spec in v1.17 (see evaluator.ts). Default false. */
  legacyMentionRules?: boolean;
  delivery?: Partial<DeliveryOptions>;
  /** Notifications older than this are pruned (default 30 days). */
  retentionMs?: number;
}

const DEFAULT_RETENTION_MS = 30 * 24 * 3600_000;
/** Formats events of rooms not known here (see formatEvents); any version formats them alike. */
const OUT_OF_BAND_VERSION: RoomVersion = getRoomVersion('10')!;
const PRUNE_INTERVAL_MS = 3600_000;

export interface NotificationsPage {
  notifications: Array<{ actions: unknown[]; event: ClientEvent; profile_tag: string; read: boolean; room_id: string; ts: number }>;
  next_token?: string;
}

/** Push rules, per-user notifications from committed events, and delivery to push gateways. */
export class PushService {
  readonly rules: PushRulesService;
  readonly pushers: PusherService;
  readonly processor: NotificationProcessor;
  /**
   * Read positions for counts and the `read` flag of GET /notifications. Until read receipts are plugged
   * in here (`push.readPositions = …`), nothing counts as read.
   */
  readPositions: ReadPositions = async () => new Map();
  private readonly pruneTimer: NodeJS.Timeout;

  constructor(
    private readonly deps: ServiceDeps & { rooms: RoomService; accountData: AccountDataService },
    options: PushOptions = {},
  ) {
    this.rules = new PushRulesService(deps, { legacyMentions: options.legacyMentionRules ?? false });
    this.pushers = new PusherService(deps, options.delivery);
    this.processor = new NotificationProcessor({
      ...deps,
      rules: this.rules,
      onNotified: (notified) => this.pushers.deliver(notified, { unread: (userId) => this.unreadTotal(userId) }),
    });
    const retention = options.retentionMs ?? DEFAULT_RETENTION_MS;
    this.pruneTimer = setInterval(() => {
      pruneNotifications(deps.db.knex, deps.clock.now() - retention).catch((err: unknown) => deps.logger.warn({ err }, 'pruning notifications failed'));
    }, PRUNE_INTERVAL_MS);
    this.pruneTimer.unref();
  }

  /** Subscribed to `rooms.onCommitted`: evaluation runs after the commit, off the write path. */
  onCommitted(result: WriteResult): void {
    this.processor.enqueue(result);
  }

  /** Counts for sync's `unread_notifications`, with the read positions of `readPositions`. */
  async counts(userId: string, roomIds: readonly string[], options: NotificationCountOptions = {}): Promise<Map<string, RoomNotificationCounts>> {
    const db = this.deps.db.knex;
    return notificationCounts(db, userId, roomIds, await this.readPositions(db, userId, roomIds), options);
  }

  /** The push badge: unread notifications across all rooms. */
  async unreadTotal(userId: string): Promise<number> {
    const db = this.deps.db.knex;
    const rooms = await roomsWithNotifications(db, userId);
    let total = 0;
    for (const c of (await notificationCounts(db, userId, rooms, await this.readPositions(db, userId, rooms))).values()) total += c.notification_count;
    return total;
  }

  /** Pushes the user's current badge (unread total) to each of their pushers; failures are logged. */
  async sendBadge(userId: string): Promise<void> {
    try {
      await this.processor.idle();
      await this.pushers.deliverBadge(userId, await this.unreadTotal(userId));
    } catch (err) {
      this.deps.logger.warn({ err }, 'push: sending the badge failed');
    }
  }

  /** GET /notifications: newest first; `from` is the `next_token` of the previous page. */
  async notificationsPage(viewer: { userId: string; deviceId?: string | undefined }, params: { from?: string | undefined; limit: number; onlyHighlight: boolean }): Promise<NotificationsPage> {
    let beforeStream: number | undefined;
    if (params.from !== undefined) {
      if (!/^[0-9]{1,15}$/.test(params.from)) throw new MatrixError('M_INVALID_PARAM', 'Invalid from token');
      beforeStream = Number(params.from);
    }
    const db = this.deps.db.knex;
    const rows = await listNotifications(db, viewer.userId, { beforeStream, limit: params.limit, onlyHighlight: params.onlyHighlight });
    const stored = await this.deps.rooms.events.getMany(db, rows.map((r) => r.eventId));
    const roomIds = [...new Set(rows.map((r) => r.roomId))];
    const read = roomIds.length ? await this.readPositions(db, viewer.userId, roomIds) : new Map<string, number>();
    const present = rows.filter((r) => stored.has(r.eventId));
    const formatted = await this.formatEvents(
      present.map((r) => stored.get(r.eventId)!),
      viewer,
    );
    const page: NotificationsPage = {
      notifications: present.map((r, i) => ({
        actions: r.actions,
        event: formatted[i]!,
        // Notifications are per user, not per pusher: no tag applies. Present (as in Synapse and Dendrite) because
        // clients and SyTest read the key; a string, as the spec types it.
        profile_tag: '',
        read: r.streamOrdering <= (read.get(r.roomId) ?? -1),
        room_id: r.roomId,
        ts: r.ts,
      })),
    };
    if (rows.length === params.limit && rows.length > 0) page.next_token = String(rows[rows.length - 1]!.streamOrdering);
    return page;
  }

  /**
   * Events of rooms known here through the room reader; an invite over federation to a room this server
   * is not in has no room (nor version) here, and is formatted as it was stored: it is not a redaction and
   * nothing here can redact it, the only rules that depend on the room version.
   */
  private async formatEvents(events: readonly StoredEvent[], viewer: { userId: string; deviceId?: string | undefined }): Promise<ClientEvent[]> {
    const db = this.deps.db.knex;
    const known = new Set<string>();
    for (const roomId of new Set(events.map((e) => e.pdu.room_id))) if (await getRoom(db, roomId)) known.add(roomId);
    const inRooms = await this.deps.rooms.reader.format(
      events.filter((e) => known.has(e.pdu.room_id)),
      viewer,
    );
    const now = this.deps.clock.now();
    let next = 0;
    return events.map((e) =>
      known.has(e.pdu.room_id) ? inRooms[next++]! : toClientEvent(e.pdu, OUT_OF_BAND_VERSION, { eventId: e.eventId, now, includeRoomId: true }),
    );
  }

  /** Resolves once every committed write so far has been evaluated and its pushes queued. */
  idle(): Promise<void> {
    return this.processor.idle();
  }

  close(): void {
    clearInterval(this.pruneTimer);
    this.processor.close();
    this.pushers.close();
  }
}

/** Builds the push service and subscribes it to room commits and device/account removal. */
export function createPush(
  deps: ServiceDeps,
  others: { rooms: RoomService; users: UserService; accountData: AccountDataService },
  options: PushOptions = {},
): PushService {
  const push = new PushService({ ...deps, rooms: others.rooms, accountData: others.accountData }, options);
  others.rooms.onCommitted((result) => push.onCommitted(result));
  others.rooms.onOutOfBandMembership((event) => push.processor.enqueueOutOfBand(event));
  others.users.onDevicesDeleted.push((userId, deviceIds) => push.pushers.deleteForDevices(userId, deviceIds));
  others.users.onDeactivated.push((userId) => push.pushers.deleteAllForUser(userId));
  return push;
}
