import type { Db } from '../database.js';

// What deactivation removes of a local user's own data, and the queries erasure walks the user's events with.

/** Tables keyed by the user whose rows deactivation deletes outright. */
const USER_TABLES = [
  'account_data',
  'filters',
  'push_rules',
  'pushers',
  'push_notifications',
  'receipts',
  'room_keys',
  'room_key_versions',
  'cross_signing_keys',
  'dehydrated_devices',
  'device_keys',
  'one_time_keys',
  'fallback_keys',
  'to_device_messages',
  'openid_tokens',
  'login_tokens',
  'uia_sessions',
  'transaction_responses',
  'refresh_tokens',
  'access_tokens',
  'devices',
] as const;

/**
 * Deletes the user's account data, filters, push rules, pushers, notifications, receipts, key backup,
 * cross-signing keys and signatures, device and one-time keys, dehydrated device, queued to-device messages,
 * tokens, and clears the profile. Idempotent. The `users` row stays (deactivated) so the id is never reused.
 */
export async function deleteUserData(db: Db, userId: string): Promise<void> {
  for (const table of USER_TABLES) await db(table).where({ user_id: userId }).delete();
  await db('key_signatures').where({ signer_user_id: userId }).orWhere({ target_user_id: userId }).delete();
  await db('users').where({ user_id: userId }).update({ displayname: null, avatar_url: null });
}

/** Receipts left by the user, for the rooms to tell: (room, event) pairs. */
export async function roomsWithReceiptsOf(db: Db, userId: string): Promise<string[]> {
  const rows: Array<{ room_id: string }> = await db('receipts').where({ user_id: userId }).distinct('room_id');
  return rows.map((r) => r.room_id);
}

export interface SentEvent {
  eventId: string;
  sender: string;
  roomId: string;
  type: string;
  stateKey: string | null;
  streamOrdering: number;
  redacted: boolean;
}

/**
 * The user's events, and the member events others sent about them (an invite carries the invitee's name and
 * avatar), after stream position `after`, oldest first, `limit` at most (erasure walks them in pages).
 */
export async function eventsOfUser(db: Db, userId: string, after: number, limit: number): Promise<SentEvent[]> {
  const rows: Array<{ event_id: string; sender: string; room_id: string; type: string; state_key: string | null; stream_ordering: number | string; redacted_by: string | null }> = await db(
    'events',
  )
    .where((w) => w.where('sender', userId).orWhere((m) => m.where({ type: 'm.room.member', state_key: userId })))
    .andWhere('stream_ordering', '>', after)
    .orderBy('stream_ordering')
    .limit(limit)
    .select('event_id', 'sender', 'room_id', 'type', 'state_key', 'stream_ordering', 'redacted_by');
  return rows.map((r) => ({
    eventId: r.event_id,
    sender: r.sender,
    roomId: r.room_id,
    type: r.type,
    stateKey: r.state_key,
    streamOrdering: Number(r.stream_ordering),
    redacted: r.redacted_by !== null,
  }));
}

/** Replaces the stored JSON of events (by id) and forgets their client transaction ids. */
export async function replaceEventJson(db: Db, replacements: ReadonlyMap<string, string>): Promise<void> {
  for (const [eventId, json] of replacements) await db('events').where({ event_id: eventId }).update({ json, txn_id: null });
}

export interface QueuedPayload {
  id: number;
  payload: string;
}

/** Queued federation PDUs and application-service events that may carry the user's events (a cheap pre-filter). */
export async function queuedPayloadsMentioning(db: Db, table: 'federation_outbox' | 'appservice_queue', userId: string): Promise<QueuedPayload[]> {
  const kind = table === 'federation_outbox' ? 'pdu' : 'event';
  const rows: Array<{ id: number | string; payload: string }> = await db(table)
    .where({ kind })
    // `_` in the id matches any character here: a superset, each payload is checked after parsing.
    .andWhere('payload', 'like', `%${userId}%`)
    .select('id', 'payload');
  return rows.map((r) => ({ id: Number(r.id), payload: r.payload }));
}

export async function replaceQueuedPayload(db: Db, table: 'federation_outbox' | 'appservice_queue', id: number, payload: string): Promise<void> {
  await db(table).where({ id }).update({ payload });
}
