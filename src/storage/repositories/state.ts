import type { Db } from '../database.js';

/** State as (type, state_key) → event id, keyed by stateMapKey. */
export type StateIds = Map<string, string>;

const SEP = '\u0000';

export async function createStateGroup(
  db: Db,
  roomId: string,
  prevGroup: number | null,
  deltaDepth: number,
  entries: ReadonlyMap<string, string | null>,
): Promise<number> {
  const [row] = await db('state_groups')
    .insert({ room_id: roomId, prev_group: prevGroup, delta_depth: deltaDepth })
    .returning('id');
  const id = Number(typeof row === 'object' ? row.id : row);
  const rows = [...entries].map(([key, eventId]) => {
    const i = key.indexOf(SEP);
    return { group_id: id, type: key.slice(0, i), state_key: key.slice(i + 1), event_id: eventId };
  });
  for (let i = 0; i < rows.length; i += 200) await db('state_group_entries').insert(rows.slice(i, i + 200));
  return id;
}

export async function getStateGroup(db: Db, groupId: number): Promise<{ prevGroup: number | null; deltaDepth: number } | undefined> {
  const row = await db('state_groups').where({ id: groupId }).first('prev_group', 'delta_depth');
  return row ? { prevGroup: row.prev_group === null ? null : Number(row.prev_group), deltaDepth: Number(row.delta_depth) } : undefined;
}

export async function getStateGroupEntries(db: Db, groupId: number): Promise<Map<string, string | null>> {
  const rows: Array<{ type: string; state_key: string; event_id: string | null }> = await db('state_group_entries').where({ group_id: groupId });
  return new Map(rows.map((r) => [r.type + SEP + r.state_key, r.event_id]));
}

export interface CurrentStateRow {
  type: string;
  stateKey: string;
  eventId: string;
  membership: string | null;
}

export async function getCurrentStateIds(db: Db, roomId: string): Promise<StateIds> {
  const rows: Array<{ type: string; state_key: string; event_id: string }> = await db('current_state').where({ room_id: roomId });
  return new Map(rows.map((r) => [r.type + SEP + r.state_key, r.event_id]));
}

export async function getCurrentStateEventId(db: Db, roomId: string, type: string, stateKey: string): Promise<string | undefined> {
  const row = await db('current_state').where({ room_id: roomId, type, state_key: stateKey }).first('event_id');
  return row?.event_id;
}

export async function setCurrentState(
  db: Db,
  roomId: string,
  type: string,
  stateKey: string,
  eventId: string,
  membership: string | null,
  streamOrdering: number,
): Promise<void> {
  await db('current_state')
    .insert({ room_id: roomId, type, state_key: stateKey, event_id: eventId, membership, stream_ordering: streamOrdering })
    .onConflict(['room_id', 'type', 'state_key'])
    .merge(['event_id', 'membership', 'stream_ordering']);
}

export async function deleteCurrentState(db: Db, roomId: string, type: string, stateKey: string): Promise<void> {
  await db('current_state').where({ room_id: roomId, type, state_key: stateKey }).delete();
}

/** Rooms where the user's current membership is one of `memberships`. */
export async function roomsForUser(db: Db, userId: string, memberships: readonly string[]): Promise<Array<{ roomId: string; membership: string; eventId: string }>> {
  const rows: Array<{ room_id: string; membership: string; event_id: string }> = await db('current_state')
    .where({ type: 'm.room.member', state_key: userId })
    .whereIn('membership', memberships as string[])
    .select('room_id', 'membership', 'event_id');
  return rows.map((r) => ({ roomId: r.room_id, membership: r.membership, eventId: r.event_id }));
}

export async function currentMembership(db: Db, roomId: string, userId: string): Promise<{ membership: string; eventId: string } | undefined> {
  const row = await db('current_state').where({ room_id: roomId, type: 'm.room.member', state_key: userId }).first('membership', 'event_id');
  return row ? { membership: row.membership, eventId: row.event_id } : undefined;
}

export async function roomMembers(db: Db, roomId: string, memberships: readonly string[]): Promise<string[]> {
  const rows: Array<{ state_key: string }> = await db('current_state')
    .where({ room_id: roomId, type: 'm.room.member' })
    .whereIn('membership', memberships as string[])
    .select('state_key');
  return rows.map((r) => r.state_key);
}

/** Users sharing at least one joined room with `userId` (including themself). */
export async function usersSharingRooms(db: Db, userId: string): Promise<string[]> {
  const rows: Array<{ state_key: string }> = await db('current_state as a')
    .join('current_state as b', 'a.room_id', 'b.room_id')
    .where({ 'a.type': 'm.room.member', 'a.state_key': userId, 'a.membership': 'join', 'b.type': 'm.room.member', 'b.membership': 'join' })
    .distinct('b.state_key');
  return rows.map((r) => r.state_key);
}
