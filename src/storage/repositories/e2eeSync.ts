import type { Db } from '../database.js';

export interface MembershipChange {
  roomId: string;
  stateKey: string;
  membership: string;
  /** Members joined to the room now (for the user's own joins and leaves). */
  currentJoinedMembers: string[];
}

/** Member events in the given rooms with stream positions in (from, to], oldest first. */
export async function membershipChangesInRooms(db: Db, roomIds: readonly string[], from: number, to: number): Promise<MembershipChange[]> {
  if (!roomIds.length) return [];
  const out: MembershipChange[] = [];
  const joinedByRoom = new Map<string, string[]>();
  for (let i = 0; i < roomIds.length; i += 500) {
    const chunk = roomIds.slice(i, i + 500) as string[];
    const rows: Array<{ room_id: string; state_key: string; membership: string }> = await db('events')
      .whereIn('room_id', chunk)
      .andWhere('type', 'm.room.member')
      .andWhere('stream_ordering', '>', from)
      .andWhere('stream_ordering', '<=', to)
      .whereNull('rejected_reason')
      .orderBy('stream_ordering', 'asc')
      .select('room_id', 'state_key', 'membership');
    for (const r of rows) out.push({ roomId: r.room_id, stateKey: r.state_key, membership: r.membership, currentJoinedMembers: [] });
  }
  const needMembers = [...new Set(out.map((c) => c.roomId))];
  for (let i = 0; i < needMembers.length; i += 500) {
    const rows: Array<{ room_id: string; state_key: string }> = await db('current_state')
      .whereIn('room_id', needMembers.slice(i, i + 500))
      .andWhere({ type: 'm.room.member', membership: 'join' })
      .select('room_id', 'state_key');
    for (const r of rows) {
      const list = joinedByRoom.get(r.room_id) ?? [];
      list.push(r.state_key);
      joinedByRoom.set(r.room_id, list);
    }
  }
  for (const c of out) c.currentJoinedMembers = joinedByRoom.get(c.roomId) ?? [];
  return out;
}

/** Whether any membership event was stored in (from, to]. */
export async function anyMembershipChange(db: Db, from: number, to: number): Promise<boolean> {
  const row = await db('events')
    .where('type', 'm.room.member')
    .andWhere('stream_ordering', '>', from)
    .andWhere('stream_ordering', '<=', to)
    .first('stream_ordering');
  return row !== undefined;
}
