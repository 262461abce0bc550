import type { DeviceKeysService } from '../../e2ee/deviceKeysService.js';
import type { Db } from '../../storage/database.js';
import { changedReceipts, receiptsInRooms, type ReceiptRow } from '../../storage/repositories/receipts.js';
import { dict } from '../../util/dict.js';
import { receiptContents, type ReceiptContent } from '../providers/receipts.js';
import type { BasicEvent } from '../response.js';
import type { SyncService } from '../syncService.js';
import type { SyncPositions, SyncTopic } from '../token.js';
import type { ExtensionsRequest, ScopedExtension } from './request.js';
import type { InterestedRooms } from './roomLists.js';

// MSC4186 extensions — to_device (MSC3885), e2ee (MSC3884), account_data (MSC3959), receipts (MSC3960),
// typing (MSC3961) — read through the /sync providers and reshaped as Synapse answers them.

export interface ExtensionsOutcome {
  body: Record<string, unknown>;
  /** Something a waiting request should be woken for (key counts alone are not, as in /sync). */
  news: boolean;
}

export interface ExtensionsInput {
  userId: string;
  deviceId: string | undefined;
  request: ExtensionsRequest;
  /** The connection's positions; undefined on a new connection. */
  since: SyncPositions | undefined;
  to: SyncPositions;
  interested: InterestedRooms;
  /** Rooms sent in this answer as new to the connection. */
  freshRooms: ReadonlySet<string>;
  /** The timeline event ids sent per room in this answer. */
  timelineIds: ReadonlyMap<string, ReadonlySet<string>>;
}

export class SlidingExtensions {
  constructor(private readonly deps: { db: () => Db; sync: SyncService; deviceKeys: DeviceKeysService }) {}

  async collect(input: ExtensionsInput): Promise<{ outcome: ExtensionsOutcome; toDevicePosition: number | undefined }> {
    const { request, since, to } = input;
    const body: Record<string, unknown> = {};
    let news = false;
    const req = { userId: input.userId, deviceId: input.deviceId };

    let toDevicePosition: number | undefined;
    if (request.toDevice && input.deviceId) {
      // `since` acknowledges (and deletes) what the device has; messages repeat until it does.
      const from = request.toDevice.since ?? 0;
      const ctx = await this.deps.sync.collectForRooms(req, new Map([['toDevice', Math.min(from, to.toDevice)]]), since, to, [], []);
      toDevicePosition = ctx.nextPositions.toDevice ?? Math.max(to.toDevice, from);
      body.to_device = { next_batch: String(toDevicePosition), events: ctx.response.toDevice };
      news ||= ctx.response.toDevice.length > 0;
    }

    if (request.e2ee && input.deviceId) {
      const [counts, fallback] = await Promise.all([
        this.deps.deviceKeys.oneTimeKeyCounts(input.userId, input.deviceId),
        this.deps.deviceKeys.unusedFallbackKeyTypes(input.userId, input.deviceId),
      ]);
      const e2ee: Record<string, unknown> = { device_one_time_keys_count: counts, device_unused_fallback_key_types: fallback };
      if (since) {
        // Device list changes exist only relative to an earlier answer (a new connection queries everyone).
        const ctx = await this.deps.sync.collectForRooms(req, new Map([['deviceLists', since.deviceLists]]), since, to, [], []);
        const { changed, left } = ctx.response.deviceLists;
        e2ee.device_lists = { changed: [...changed], left: [...left] };
        news ||= changed.size + left.size > 0;
      }
      body.e2ee = e2ee;
    }

    const scoped: Array<[SyncTopic, ScopedExtension]> = [];
    if (request.accountData) scoped.push(['accountData', request.accountData]);
    if (request.receipts) {
      const rooms = this.roomsFor(request.receipts, input.interested, true);
      const contents = await this.receipts(input, rooms);
      const roomsOut = dict<unknown>();
      for (const [roomId, content] of contents) roomsOut[roomId] = { type: 'm.receipt', content };
      body.receipts = { rooms: roomsOut };
      news ||= contents.size > 0;
    }
    if (request.typing) scoped.push(['typing', request.typing]);
    for (const [topic, scope] of scoped) {
      const rooms = this.roomsFor(scope, input.interested, topic !== 'accountData');
      const fresh = rooms.filter((id) => input.freshRooms.has(id));
      const ctx = await this.deps.sync.collectForRooms(req, new Map([[topic, since?.[topic]]]), since, to, rooms, fresh);
      const roomsOut = dict<unknown>();
      let count = 0;
      for (const [roomId, room] of ctx.response.join) {
        if (topic === 'accountData') {
          if (room.account_data.events.length) {
            roomsOut[roomId] = room.account_data.events.map(typeAndContent);
            count++;
          }
          continue;
        }
        const event = room.ephemeral.events.find((e) => e.type === 'm.typing');
        if (event) {
          roomsOut[roomId] = event;
          count++;
        }
      }
      if (topic === 'accountData') {
        const global = ctx.response.accountData.map(typeAndContent);
        body.account_data = { global, rooms: roomsOut };
        news ||= global.length + count > 0;
      } else {
        body.typing = { rooms: roomsOut };
        news ||= count > 0;
      }
    }
    return { outcome: { body, news }, toDevicePosition };
  }

  /**
   * Receipts as Synapse's extension gives them: for a room new to the connection only those on the events of
   * its timeline in this answer and the user's own; otherwise those that changed since the connection's position.
   */
  private async receipts(input: ExtensionsInput, rooms: readonly string[]): Promise<Map<string, ReceiptContent>> {
    const db = this.deps.db();
    const fresh = rooms.filter((id) => !input.since || input.freshRooms.has(id));
    const live = new Set(rooms.filter((id) => input.since && !input.freshRooms.has(id)));
    const rows: ReceiptRow[] = [];
    if (fresh.length) {
      for (const r of await receiptsInRooms(db, fresh, input.to.receipts)) {
        if (r.userId === input.userId || input.timelineIds.get(r.roomId)?.has(r.eventId)) rows.push(r);
      }
    }
    if (live.size && input.since && input.since.receipts < input.to.receipts) {
      for (const r of await changedReceipts(db, input.since.receipts, input.to.receipts)) if (live.has(r.roomId)) rows.push(r);
    }
    return receiptContents(rows, input.userId);
  }

  /**
   * The rooms an extension covers: those in the windows of its lists and its subscribed rooms (Synapse's
   * find_relevant_room_ids_for_extension); ephemeral extensions only for rooms the user is joined to.
   */
  private roomsFor(scope: ScopedExtension, interested: InterestedRooms, joinedOnly: boolean): string[] {
    const out = new Set<string>();
    for (const [name, list] of interested.lists) {
      if (scope.lists && !scope.lists.has(name)) continue;
      for (const op of list.ops) for (const id of op.room_ids) out.add(id);
    }
    // `rooms` names any room of the answer (a list's window or a subscription); omitted, it is ["*"] (Synapse).
    for (const id of interested.relevant.keys()) if (!scope.rooms || scope.rooms.has(id)) out.add(id);
    return [...out].filter((id) => !joinedOnly || interested.memberships.get(id)?.membership === 'join');
  }
}

function typeAndContent(e: BasicEvent): { type: string; content: Record<string, unknown> } {
  return { type: e.type, content: e.content };
}
