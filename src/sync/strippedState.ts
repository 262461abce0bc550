import { hiddenByIgnore, ignoredUsersOf } from '../directory/ignoredUsers.js';
import { toStrippedState } from '../rooms/clientEvent.js';
import type { RoomService } from '../rooms/roomService.js';
import type { Db } from '../storage/database.js';
import type { StoredEvent } from '../storage/repositories/events.js';
import { stateMapKey } from '../types/pdu.js';
import type { StrippedStateEvent } from './response.js';

// What someone invited or knocking sees of a room (spec: "Stripped state"), for /sync and sliding sync alike:
// the state at their membership event when this server has the room, else what federation carried with it.

const STRIPPED_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

export interface StrippedMembership {
  roomId: string;
  /** The invite or knock event. */
  eventId: string;
}

/**
 * Stripped state per room, the membership event itself last. Invites from users `userId` ignores are left
 * out (spec: "Ignoring Users").
 */
export async function strippedStateFor(
  db: Db,
  rooms: Pick<RoomService, 'events' | 'state'>,
  userId: string,
  memberships: readonly StrippedMembership[],
  kind: 'invite' | 'knock',
): Promise<Map<string, StrippedStateEvent[]>> {
  const out = new Map<string, StrippedStateEvent[]>();
  if (memberships.length === 0) return out;
  const ignored = kind === 'invite' ? await ignoredUsersOf(db, userId) : new Set<string>();
  const memberEvents = await rooms.events.getMany(db, memberships.map((r) => r.eventId));
  const perRoom: Array<{ roomId: string; member: StoredEvent; ids: string[]; carried?: StrippedStateEvent[] }> = [];
  for (const row of memberships) {
    const member = memberEvents.get(row.eventId);
    if (!member || (kind === 'invite' && hiddenByIgnore(ignored, { sender: member.pdu.sender }))) continue;
    const carried = member.pdu.unsigned?.[kind === 'invite' ? 'invite_room_state' : 'knock_room_state'];
    if (Array.isArray(carried) && member.stateAfter === null) {
      perRoom.push({ roomId: row.roomId, member, ids: [], carried: carried as StrippedStateEvent[] });
      continue;
    }
    const ids = member.stateAfter === null ? new Map<string, string>() : await rooms.state.stateIds(db, member.stateAfter);
    const keys = [...STRIPPED_TYPES.map((t) => stateMapKey(t, '')), stateMapKey('m.room.member', member.pdu.sender)];
    const wanted = keys.map((k) => ids.get(k)).filter((x): x is string => x !== undefined && x !== member.eventId);
    perRoom.push({ roomId: row.roomId, member, ids: wanted });
  }
  const loaded = await rooms.events.getMany(db, perRoom.flatMap((r) => r.ids));
  for (const r of perRoom) {
    const events: StrippedStateEvent[] = r.carried
      ? [...r.carried]
      : r.ids.map((id) => loaded.get(id)).filter((e): e is StoredEvent => e !== undefined).map((e) => toStrippedState(e.pdu));
    events.push(toStrippedState(r.member.pdu));
    out.set(r.roomId, events);
  }
  return out;
}
