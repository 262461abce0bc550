import type { ServiceDeps } from '../serviceDeps.js';
import * as stateRepo from '../storage/repositories/state.js';
import { getUser } from '../storage/repositories/users.js';
import type { RoomService } from './roomService.js';
import type { WriteResult } from './roomWriter.js';
import { serverNameOf } from './eventFormat.js';

/**
 * Spec: Client-Server API, "Guest access", server behaviour: when m.room.guest_access stops being
 * `can_join`, local guests in the room leave (each as themselves, as Synapse).
 */
export class GuestAccessEnforcer {
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: ServiceDeps,
    private readonly rooms: RoomService,
  ) {}

  onCommitted(result: WriteResult): void {
    for (const ev of result.events) {
      const pdu = ev.pdu;
      if (ev.rejected || ev.outlier || pdu.type !== 'm.room.guest_access' || pdu.state_key !== '' || pdu.content.guest_access === 'can_join') continue;
      this.tail = this.tail.then(() => this.removeGuests(pdu.room_id)).catch((err: unknown) => this.deps.logger.error({ err }, 'removing guests failed'));
    }
  }

  /** Resolves once queued removals are done (shutdown). */
  idle(): Promise<void> {
    return this.tail;
  }

  private async removeGuests(roomId: string): Promise<void> {
    const db = this.deps.db.knex;
    const eventId = await stateRepo.getCurrentStateEventId(db, roomId, 'm.room.guest_access', '');
    const current = eventId ? await this.rooms.events.get(db, eventId) : undefined;
    if (current?.pdu.content.guest_access === 'can_join') return;
    const members = await stateRepo.roomMembers(db, roomId, ['join']);
    for (const userId of members) {
      if (serverNameOf(userId) !== this.deps.serverName || !(await getUser(db, userId))?.isGuest) continue;
      await this.rooms.setMembership({ userId, isGuest: true }, roomId, userId, 'leave');
    }
  }
}
