import type { Database } from '../storage/database.js';
import { deleteDerivedEventRows } from '../storage/repositories/eventDerived.js';
import { getEvents } from '../storage/repositories/events.js';
import { getRoom } from '../storage/repositories/rooms.js';
import { replaceEventJson } from '../storage/repositories/userErasure.js';
import type { Pdu } from '../types/pdu.js';
import { redactPdu } from './eventFormat.js';
import type { RoomService } from './roomService.js';
import { getRoomVersion, type RoomVersion } from './roomVersions.js';

// Erasure keeps an event only as the redacted form its room version defines: event id, hashes and signatures
// stay valid (they cover that form), the DAG is untouched, the content and everything derived from it go.

/**
 * State events that configure the room and authorise others' events keep their content: pruning them would
 * change what the auth rules allow here (e.g. `invite` of power levels in older versions) while other servers
 * keep the original, and the room would fork. They hold no message text.
 */
export const ROOM_CONFIG_TYPES: ReadonlySet<string> = new Set([
  'm.room.create',
  'm.room.power_levels',
  'm.room.join_rules',
  'm.room.history_visibility',
  'm.room.guest_access',
  'm.room.encryption',
  'm.room.server_acl',
  'm.room.third_party_invite',
  'm.room.tombstone',
  'm.room.canonical_alias',
]);

// Rooms we hold no row for (an out-of-band invite): the legacy algorithm, which keeps a superset of top-level keys.
const FALLBACK_VERSION = '10';

/**
 * Replaces the stored JSON of `eventIds` (all in `roomId`) by their redacted form and drops their search,
 * notification and relation rows. Runs as a write on the room, so the cached room head takes the pruned
 * state too. Idempotent: a pruned event prunes to itself.
 */
export async function pruneStoredEvents(rooms: RoomService, db: Database, roomId: string, eventIds: readonly string[]): Promise<void> {
  if (!eventIds.length) return;
  const apply = async (trx: Parameters<typeof getEvents>[0], version: RoomVersion): Promise<Map<string, Pdu>> => {
    const stored = await getEvents(trx, eventIds);
    const pruned = new Map<string, Pdu>();
    const json = new Map<string, string>();
    for (const [id, ev] of stored) {
      const p = redactPdu(ev.pdu, version);
      // A redaction keeps what it redacts (top-level before v11, which the legacy algorithm drops): the event
      // id covers the redacted form only, so the stored event stays valid; only a `reason` goes.
      if (ev.pdu.type === 'm.room.redaction' && typeof ev.pdu.redacts === 'string') (p as { redacts?: string }).redacts = ev.pdu.redacts;
      pruned.set(id, p);
      json.set(id, JSON.stringify(p));
    }
    await replaceEventJson(trx, json);
    await deleteDerivedEventRows(trx, [...stored.keys()]);
    return pruned;
  };
  for (const id of eventIds) rooms.events.invalidate(id);
  if (await getRoom(db.knex, roomId)) {
    await rooms.write(roomId, async (ctx, trx) => {
      await ctx.willWrite();
      ctx.replaceStatePdus(await apply(trx, ctx.version));
    });
  } else {
    await db.write((trx) => apply(trx, getRoomVersion(FALLBACK_VERSION)!));
  }
  for (const id of eventIds) rooms.events.invalidate(id);
}
