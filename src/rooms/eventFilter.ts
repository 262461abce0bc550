import type { Pdu } from '../types/pdu.js';

// Spec: Client-Server API, "Filtering" — RoomEventFilter matching, pure.
export interface RoomEventFilter {
  limit?: number | undefined;
  types?: string[] | undefined;
  not_types?: string[] | undefined;
  senders?: string[] | undefined;
  not_senders?: string[] | undefined;
  rooms?: string[] | undefined;
  not_rooms?: string[] | undefined;
  contains_url?: boolean | undefined;
  lazy_load_members?: boolean | undefined;
  include_redundant_members?: boolean | undefined;
  unread_thread_notifications?: boolean | undefined;
}

/** `*` matches any run of characters in type filters. */
function typeMatches(pattern: string, type: string): boolean {
  if (!pattern.includes('*')) return pattern === type;
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(type);
}

export function matchesRoomEventFilter(pdu: Pdu, filter: RoomEventFilter | undefined): boolean {
  if (!filter) return true;
  // A v12 create event carries no room_id; callers have already chosen its room.
  if (typeof pdu.room_id === 'string') {
    if (filter.not_rooms?.includes(pdu.room_id)) return false;
    if (filter.rooms && !filter.rooms.includes(pdu.room_id)) return false;
  }
  if (filter.not_senders?.includes(pdu.sender)) return false;
  if (filter.senders && !filter.senders.includes(pdu.sender)) return false;
  if (filter.not_types?.some((t) => typeMatches(t, pdu.type))) return false;
  if (filter.types && !filter.types.some((t) => typeMatches(t, pdu.type))) return false;
  if (filter.contains_url !== undefined) {
    const has = typeof pdu.content.url === 'string';
    if (has !== filter.contains_url) return false;
  }
  return true;
}
