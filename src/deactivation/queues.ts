import { redactPdu } from '../rooms/eventFormat.js';
import type { RoomService } from '../rooms/roomService.js';
import { getRoomVersion, type RoomVersion } from '../rooms/roomVersions.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { queuedPayloadsMentioning, replaceQueuedPayload } from '../storage/repositories/userErasure.js';
import type { Pdu } from '../types/pdu.js';

// Events still waiting in the durable queues (federation outbox, application service queue) are copies of
// the stored ones: an erased user's events there are pruned the same way, so a server or bridge that comes
// back later receives the redacted form.

type Deps = Pick<ServiceDeps, 'db' | 'logger'> & { rooms: RoomService };

async function versionOf(deps: Deps, roomId: unknown): Promise<RoomVersion> {
  if (typeof roomId === 'string') {
    try {
      return await deps.rooms.roomVersion(deps.db.knex, roomId);
    } catch {
      // unknown room: the legacy rules below
    }
  }
  return getRoomVersion('10')!;
}

export async function scrubQueuedEvents(deps: Deps, userId: string): Promise<void> {
  for (const table of ['federation_outbox', 'appservice_queue'] as const) {
    for (const row of await queuedPayloadsMentioning(deps.db.knex, table, userId)) {
      let ev: Record<string, unknown>;
      try {
        ev = JSON.parse(row.payload) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (ev === null || typeof ev !== 'object' || ev.sender !== userId) continue;
      const pruned = redactPdu(ev as unknown as Pdu, await versionOf(deps, ev.room_id));
      // A PDU goes as its redacted form; a client-format event keeps its shape with the pruned content.
      const replacement = table === 'federation_outbox' ? pruned : { ...ev, content: pruned.content, unsigned: {} };
      await replaceQueuedPayload(deps.db.knex, table, row.id, JSON.stringify(replacement));
    }
  }
}
