import type { SyncContext } from '../sync/provider.js';
import type { BasicEvent, JoinedRoom } from '../sync/response.js';

// Helpers for the providers that decorate joined rooms with ephemeral events (receipts, typing).

/** Whether the sync filter lets an ephemeral event of `type` through for `roomId`. */
export function ephemeralAllowed(ctx: SyncContext, roomId: string, type: string, sender?: string): boolean {
  const f = ctx.filter.room?.ephemeral;
  if (!f) return true;
  if (f.not_rooms?.includes(roomId) || (f.rooms && !f.rooms.includes(roomId))) return false;
  const matches = (p: string) => p === type || (p.endsWith('*') && type.startsWith(p.slice(0, -1)));
  if (f.not_types?.some(matches)) return false;
  if (f.types && !f.types.some(matches)) return false;
  if (sender !== undefined && (f.not_senders?.includes(sender) || (f.senders && !f.senders.includes(sender)))) return false;
  return true;
}

/** Adds an ephemeral event to a joined room's entry, creating the entry if the room was quiet. */
export function addEphemeral(ctx: SyncContext, roomId: string, event: BasicEvent): JoinedRoom {
  const room = ctx.response.joinedRoom(roomId);
  room.ephemeral.events.push(event);
  return room;
}
