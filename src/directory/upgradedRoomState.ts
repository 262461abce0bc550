import type { RoomService, WriteResult } from '../rooms/roomService.js';
import { serverNameOf } from '../rooms/eventFormat.js';
import type { ServiceDeps } from '../serviceDeps.js';
import * as stateRepo from '../storage/repositories/state.js';
import type { AccountDataService } from '../sync/accountDataService.js';
import type { TagService } from './tags.js';

/**
 * As Synapse's `copy_user_state_on_room_upgrade`: when a local user joins the replacement of an upgraded
 * room, their tags of the old room are copied to it and m.direct lists it beside the old room.
 */
export class UpgradedRoomState {
  constructor(private readonly deps: ServiceDeps & { rooms: RoomService; tags: TagService; accountData: AccountDataService }) {}

  /** Subscribed to `rooms.onCommitted`; failures are logged, never thrown. */
  onCommitted(result: WriteResult): void {
    for (const ev of result.events) {
      const pdu = ev.pdu;
      if (pdu.type !== 'm.room.member' || typeof pdu.state_key !== 'string' || (pdu.content as { membership?: unknown }).membership !== 'join') continue;
      if (serverNameOf(pdu.state_key) !== this.deps.serverName) continue;
      void this.copyFor(pdu.state_key, pdu.room_id).catch((err: unknown) => this.deps.logger.warn({ err, roomId: pdu.room_id }, 'copying state of an upgraded room failed'));
    }
  }

  private async copyFor(userId: string, newRoomId: string): Promise<void> {
    const db = this.deps.db.knex;
    const createId = await stateRepo.getCurrentStateEventId(db, newRoomId, 'm.room.create', '');
    const create = createId ? await this.deps.rooms.events.get(db, createId) : undefined;
    const predecessor = (create?.pdu.content as { predecessor?: { room_id?: unknown } } | undefined)?.predecessor;
    const oldRoomId = typeof predecessor?.room_id === 'string' ? predecessor.room_id : undefined;
    if (!oldRoomId) return;
    const existing = await this.deps.tags.get(userId, newRoomId);
    for (const [tag, content] of Object.entries(await this.deps.tags.get(userId, oldRoomId))) {
      if (!Object.hasOwn(existing, tag)) await this.deps.tags.set(userId, newRoomId, tag, content);
    }
    const direct = await this.deps.accountData.get(userId, '', 'm.direct');
    if (!direct) return;
    for (const [key, rooms] of Object.entries(direct)) {
      if (Array.isArray(rooms) && rooms.includes(oldRoomId) && !rooms.includes(newRoomId)) {
        await this.deps.accountData.put(userId, '', 'm.direct', { ...direct, [key]: [...rooms, newRoomId] }); // prototype-safe: key from the user's own m.direct, spread copy
        return;
      }
    }
  }
}
