import type { Db } from '../storage/database.js';
import { countNotifications } from '../storage/repositories/notifications.js';
import { dict } from '../util/dict.js';

export interface UnreadCounts {
  notification_count: number;
  highlight_count: number;
}

/** A joined room's `unread_notifications`, plus per-thread counts (`unread_thread_notifications`). */
export interface RoomNotificationCounts extends UnreadCounts {
  threads?: Record<string, UnreadCounts>;
}

export interface NotificationCountOptions {
  /**
   * Split threads out (the sync filter's `unread_thread_notifications`): the room-level counts then cover
   * the main timeline only and `threads` holds one entry per thread root with notifications. Without it
   * the room-level counts cover the whole room and `threads` is absent.
   */
  threaded?: boolean;
  /** Only count events up to this stream position (the `to` of the sync being built). */
  upTo?: number;
}

/**
 * Notification and highlight counts per room from the stored push notifications, counting the events
 * after `readUpTo.get(roomId)` — the stream ordering of the event the user's read receipt points at.
 * A room without an entry counts all its notifications. Every requested room gets an entry (zeros too).
 */
export async function notificationCounts(
  db: Db,
  userId: string,
  roomIds: readonly string[],
  readUpTo: ReadonlyMap<string, number> = new Map(),
  options: NotificationCountOptions = {},
): Promise<Map<string, RoomNotificationCounts>> {
  const out = new Map<string, RoomNotificationCounts>();
  for (const id of roomIds) out.set(id, { notification_count: 0, highlight_count: 0 });
  if (roomIds.length === 0) return out;
  const rows = await countNotifications(db, userId, roomIds, readUpTo, options.upTo);
  for (const row of rows) {
    const entry = out.get(row.roomId);
    if (!entry) continue;
    if (options.threaded && row.threadId !== null) {
      entry.threads ??= dict();
      const t = (entry.threads[row.threadId] ??= { notification_count: 0, highlight_count: 0 });
      t.notification_count += row.notifications;
      t.highlight_count += row.highlights;
    } else {
      entry.notification_count += row.notifications;
      entry.highlight_count += row.highlights;
    }
  }
  return out;
}
