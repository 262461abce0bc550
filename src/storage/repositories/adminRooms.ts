import type { Db } from '../database.js';

// Rooms as Synapse's admin API shows them (`GET /_synapse/admin/v1/rooms`), read from current state, and the
// rows of room blocks and deletions (migrations/0026).

/** The state a room listing shows, by event type (state key ''). */
const SUMMARY_TYPES = [
  'm.room.create',
  'm.room.name',
  'm.room.canonical_alias',
  'm.room.join_rules',
  'm.room.guest_access',
  'm.room.history_visibility',
  'm.room.encryption',
  'm.room.avatar',
  'm.room.topic',
] as const;

export interface RoomSummaryRow {
  roomId: string;
  version: string;
  creator: string | null;
  isPublic: boolean;
  /** Content of each summary state event present, by type. */
  state: Map<string, Record<string, unknown>>;
  joinedMembers: number;
  joinedLocalMembers: number;
  stateEvents: number;
}

/** Summaries of every room this server holds state for (no purged ones), or of `roomIds`. */
export async function roomSummaries(db: Db, serverName: string, roomIds?: readonly string[]): Promise<RoomSummaryRow[]> {
  const roomsQuery = db('rooms')
    .whereNotNull('current_state_group')
    .whereNotIn('room_id', db('room_deletions').where({ purge: true, status: 'complete' }).select('room_id'))
    .select('room_id', 'room_version', 'creator', 'is_public');
  if (roomIds) roomsQuery.whereIn('room_id', roomIds as string[]);
  const rooms: Array<{ room_id: string; room_version: string; creator: string | null; is_public: boolean | number }> = await roomsQuery;
  if (!rooms.length) return [];
  const ids = rooms.map((r) => r.room_id);
  const only = <T extends { whereIn: (c: string, v: string[]) => T }>(q: T): T => (roomIds ? q.whereIn('cs.room_id', ids) : q);
  const stateRows: Array<{ room_id: string; type: string; json: string }> = await only(
    db('current_state as cs').join('events as e', 'e.event_id', 'cs.event_id').where('cs.state_key', '').whereIn('cs.type', [...SUMMARY_TYPES]).select('cs.room_id', 'cs.type', 'e.json'),
  );
  const localSuffix = `:${serverName}`;
  const memberRows: Array<{ room_id: string; state_key: string }> = await only(
    db('current_state as cs').where({ 'cs.type': 'm.room.member', 'cs.membership': 'join' }).select('cs.room_id', 'cs.state_key'),
  );
  const countRows = (await only(db('current_state as cs').groupBy('cs.room_id').select('cs.room_id').count({ n: '*' }))) as unknown as Array<{ room_id: string; n: number | string }>;
  const byRoom = new Map<string, RoomSummaryRow>();
  for (const r of rooms) {
    byRoom.set(r.room_id, {
      roomId: r.room_id,
      version: r.room_version,
      creator: r.creator,
      isPublic: Boolean(r.is_public),
      state: new Map(),
      joinedMembers: 0,
      joinedLocalMembers: 0,
      stateEvents: 0,
    });
  }
  for (const s of stateRows) {
    const content = (JSON.parse(s.json) as { content?: unknown }).content;
    if (content && typeof content === 'object') byRoom.get(s.room_id)?.state.set(s.type, content as Record<string, unknown>);
  }
  for (const m of memberRows) {
    const room = byRoom.get(m.room_id);
    if (!room) continue;
    room.joinedMembers++;
    if (m.state_key.endsWith(localSuffix)) room.joinedLocalMembers++;
  }
  for (const c of countRows) {
    const room = byRoom.get(c.room_id);
    if (room) room.stateEvents = Number(c.n);
  }
  return [...byRoom.values()];
}

/** How many devices these users have together (a room's `joined_local_devices`). */
export async function deviceCount(db: Db, userIds: readonly string[]): Promise<number> {
  if (!userIds.length) return 0;
  const row = (await db('devices').whereIn('user_id', userIds as string[]).count({ n: '*' }).first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}

/** A room the admin API may show: held here and not purged by an admin. */
export async function roomVisibleToAdmin(db: Db, roomId: string): Promise<boolean> {
  const room = await db('rooms').where({ room_id: roomId }).first('room_id');
  if (!room) return false;
  const purged = await db('room_deletions').where({ room_id: roomId, purge: true, status: 'complete' }).first('delete_id');
  return !purged;
}

export async function blockRoom(db: Db, roomId: string, userId: string, now: number): Promise<void> {
  await db('blocked_rooms').insert({ room_id: roomId, user_id: userId, created_ts: now }).onConflict('room_id').ignore();
}

export async function unblockRoom(db: Db, roomId: string): Promise<void> {
  await db('blocked_rooms').where({ room_id: roomId }).delete();
}

export async function roomBlock(db: Db, roomId: string): Promise<{ userId: string } | undefined> {
  const row = await db('blocked_rooms').where({ room_id: roomId }).first('user_id');
  return row ? { userId: row.user_id as string } : undefined;
}

export interface RoomDeletionRow {
  deleteId: string;
  roomId: string;
  status: 'shutting_down' | 'purging' | 'complete' | 'failed';
  purge: boolean;
  error: string | null;
  requester: string;
  params: Record<string, unknown>;
  result: { kicked_users: string[]; failed_to_kick_users: string[]; local_aliases: string[]; new_room_id: string | null };
}

const EMPTY_RESULT = { kicked_users: [], failed_to_kick_users: [], local_aliases: [], new_room_id: null };

export async function insertRoomDeletion(db: Db, d: { deleteId: string; roomId: string; requester: string; purge: boolean; params: unknown; now: number }): Promise<void> {
  await db('room_deletions').insert({
    delete_id: d.deleteId,
    room_id: d.roomId,
    requester: d.requester,
    status: 'shutting_down',
    purge: d.purge,
    result_json: JSON.stringify(EMPTY_RESULT),
    params_json: JSON.stringify(d.params),
    created_ts: d.now,
    updated_ts: d.now,
  });
}

export async function updateRoomDeletion(
  db: Db,
  deleteId: string,
  change: { status: RoomDeletionRow['status']; error?: string | null; result?: RoomDeletionRow['result'] },
  now: number,
): Promise<void> {
  await db('room_deletions')
    .where({ delete_id: deleteId })
    .update({
      status: change.status,
      updated_ts: now,
      ...(change.error !== undefined ? { error: change.error } : {}),
      ...(change.result !== undefined ? { result_json: JSON.stringify(change.result) } : {}),
    });
}

function toDeletion(r: Record<string, unknown>): RoomDeletionRow {
  return {
    deleteId: r.delete_id as string,
    roomId: r.room_id as string,
    status: r.status as RoomDeletionRow['status'],
    purge: Boolean(r.purge),
    error: (r.error as string | null) ?? null,
    requester: r.requester as string,
    params: JSON.parse(r.params_json as string) as Record<string, unknown>,
    result: { ...EMPTY_RESULT, ...(JSON.parse(r.result_json as string) as Partial<RoomDeletionRow['result']>) },
  };
}

export async function roomDeletion(db: Db, deleteId: string): Promise<RoomDeletionRow | undefined> {
  const row = await db('room_deletions').where({ delete_id: deleteId }).first();
  return row ? toDeletion(row) : undefined;
}

export async function roomDeletionsOf(db: Db, roomId: string): Promise<RoomDeletionRow[]> {
  const rows: Array<Record<string, unknown>> = await db('room_deletions').where({ room_id: roomId }).orderBy('created_ts', 'asc');
  return rows.map(toDeletion);
}

/** Deletions a stopped process left unfinished: they resume at start-up. */
export async function interruptedRoomDeletions(db: Db): Promise<RoomDeletionRow[]> {
  const rows: Array<Record<string, unknown>> = await db('room_deletions').whereIn('status', ['shutting_down', 'purging']);
  return rows.map(toDeletion);
}

/** Ids of the room's events, a page at a time in stream order (for the purge). */
export async function roomEventIdsAfter(
  db: Db,
  roomId: string,
  after: number,
  limit: number,
): Promise<Array<{ eventId: string; streamOrdering: number; type: string; isState: boolean }>> {
  const rows: Array<{ event_id: string; stream_ordering: number | string; type: string; state_key: string | null }> = await db('events')
    .where('room_id', roomId)
    .andWhere('stream_ordering', '>', after)
    .orderBy('stream_ordering', 'asc')
    .limit(limit)
    .select('event_id', 'stream_ordering', 'type', 'state_key');
  return rows.map((r) => ({ eventId: r.event_id, streamOrdering: Number(r.stream_ordering), type: r.type, isState: r.state_key !== null }));
}
