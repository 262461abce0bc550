import { z } from 'zod';
import type { RoomEventFilter } from '../rooms/eventFilter.js';

// Spec: Client-Server API, "Filtering". Unknown keys are kept (the filter is returned as uploaded).
const stringList = z.array(z.string());
const limit = z.number().int().min(0);
// Room and user ids are checked for their sigil, as Synapse's filter schema does (room ids of v12 have no ':').
const roomIdList = z.array(z.string().regex(/^!./, 'must be a room ID'));
const userIdList = z.array(z.string().regex(/^@[^:]*:./, 'must be a user ID'));

export const eventFilterSchema = z.looseObject({
  limit: limit.optional(),
  types: stringList.optional(),
  not_types: stringList.optional(),
  senders: userIdList.optional(),
  not_senders: userIdList.optional(),
});

export const roomEventFilterSchema = z.looseObject({
  ...eventFilterSchema.shape,
  rooms: roomIdList.optional(),
  not_rooms: roomIdList.optional(),
  contains_url: z.boolean().optional(),
  lazy_load_members: z.boolean().optional(),
  include_redundant_members: z.boolean().optional(),
  unread_thread_notifications: z.boolean().optional(),
});

export const roomFilterSchema = z.looseObject({
  rooms: roomIdList.optional(),
  not_rooms: roomIdList.optional(),
  include_leave: z.boolean().optional(),
  timeline: roomEventFilterSchema.optional(),
  state: roomEventFilterSchema.optional(),
  ephemeral: roomEventFilterSchema.optional(),
  account_data: roomEventFilterSchema.optional(),
});

export const syncFilterSchema = z.looseObject({
  event_fields: stringList.optional(),
  event_format: z.enum(['client', 'federation']).optional(),
  presence: eventFilterSchema.optional(),
  account_data: eventFilterSchema.optional(),
  room: roomFilterSchema.optional(),
});

export type EventFilter = z.output<typeof eventFilterSchema>;
export type SyncFilter = z.output<typeof syncFilterSchema>;

export const DEFAULT_TIMELINE_LIMIT = 10;
export const MAX_TIMELINE_LIMIT = 1000;

/** `*` matches any run of characters in type filters (as in RoomEventFilter). */
function typeMatches(pattern: string, type: string): boolean {
  if (!pattern.includes('*')) return pattern === type;
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(type);
}

/** EventFilter for non-room events (account data, presence): types and senders only. */
export function matchesEventFilter(event: { type: string; sender?: string | undefined }, filter: EventFilter | undefined): boolean {
  if (!filter) return true;
  if (filter.not_types?.some((t) => typeMatches(t, event.type))) return false;
  if (filter.types && !filter.types.some((t) => typeMatches(t, event.type))) return false;
  if (event.sender !== undefined) {
    if (filter.not_senders?.includes(event.sender)) return false;
    if (filter.senders && !filter.senders.includes(event.sender)) return false;
  }
  return true;
}

/** The room-level `rooms` / `not_rooms` of a sync filter. */
export function roomAllowed(filter: SyncFilter, roomId: string): boolean {
  const room = filter.room;
  if (!room) return true;
  if (room.not_rooms?.includes(roomId)) return false;
  if (room.rooms && !room.rooms.includes(roomId)) return false;
  return true;
}

export function timelineLimit(filter: SyncFilter): number {
  const l = filter.room?.timeline?.limit;
  return l === undefined ? DEFAULT_TIMELINE_LIMIT : Math.min(l, MAX_TIMELINE_LIMIT);
}

/** Whether a list of events should be cut by an EventFilter's limit. */
export function applyLimit<T>(items: T[], filter: EventFilter | undefined): T[] {
  const l = filter?.limit;
  return l === undefined ? items : items.slice(-l);
}

export function asRoomEventFilter(f: z.output<typeof roomEventFilterSchema> | undefined): RoomEventFilter | undefined {
  return f as RoomEventFilter | undefined;
}

/** Whether member events already sent to the device are sent again (spec: "Lazy-loading room members"). */
export function includeRedundantMembers(filter: SyncFilter): boolean {
  return filter.room?.state?.include_redundant_members === true;
}

/** Lazy-loading members is asked for in the state filter (spec: "Lazy-loading room members"). */
export function lazyLoadMembers(filter: SyncFilter): boolean {
  return filter.room?.state?.lazy_load_members === true;
}
