import type { Db } from '../database.js';

// Presence: one row per user; every change deletes and re-inserts it so its id is the stream position.

export type PresenceState = 'online' | 'unavailable' | 'offline';

export interface PresenceRow {
  streamId: number;
  userId: string;
  state: PresenceState;
  statusMsg: string | undefined;
  lastActiveTs: number;
  lastSyncTs: number;
  explicit: boolean;
}

interface Row {
  stream_id: number | string;
  user_id: string;
  state: string;
  status_msg: string | null;
  last_active_ts: number | string;
  last_sync_ts: number | string;
  explicit: boolean | number;
}

const COLUMNS = ['stream_id', 'user_id', 'state', 'status_msg', 'last_active_ts', 'last_sync_ts', 'explicit'];

const toPresence = (r: Row): PresenceRow => ({
  streamId: Number(r.stream_id),
  userId: r.user_id,
  state: r.state as PresenceState,
  statusMsg: r.status_msg ?? undefined,
  lastActiveTs: Number(r.last_active_ts),
  lastSyncTs: Number(r.last_sync_ts),
  explicit: Boolean(r.explicit),
});

export async function getPresence(db: Db, userId: string): Promise<PresenceRow | undefined> {
  const row: Row | undefined = await db('presence').where({ user_id: userId }).first(COLUMNS);
  return row ? toPresence(row) : undefined;
}

export async function presenceOfUsers(db: Db, userIds: readonly string[]): Promise<PresenceRow[]> {
  const out: PresenceRow[] = [];
  for (let i = 0; i < userIds.length; i += 400) {
    const rows: Row[] = await db('presence').whereIn('user_id', userIds.slice(i, i + 400) as string[]).select(COLUMNS);
    out.push(...rows.map(toPresence));
  }
  return out;
}

/** Stores the user's presence under a new stream position. Call inside a stream-write transaction. */
export async function putPresence(db: Db, p: Omit<PresenceRow, 'streamId'>): Promise<number> {
  await db('presence').where({ user_id: p.userId }).delete();
  const [row] = await db('presence')
    .insert({
      user_id: p.userId,
      state: p.state,
      status_msg: p.statusMsg ?? null,
      last_active_ts: p.lastActiveTs,
      last_sync_ts: p.lastSyncTs,
      explicit: p.explicit,
    })
    .returning('stream_id');
  return Number(typeof row === 'object' ? (row as { stream_id: number }).stream_id : row);
}

/** Records a sign of life without publishing a change (no new stream position). */
export async function touchPresenceSync(db: Db, userId: string, ts: number): Promise<void> {
  await db('presence').where({ user_id: userId }).andWhere('last_sync_ts', '<', ts).update({ last_sync_ts: ts });
}

/** Presence rows changed in (fromExclusive, toInclusive]. */
export async function changedPresence(db: Db, fromExclusive: number, toInclusive: number): Promise<PresenceRow[]> {
  const rows: Row[] = await db('presence')
    .where('stream_id', '>', fromExclusive)
    .andWhere('stream_id', '<=', toInclusive)
    .orderBy('stream_id')
    .select(COLUMNS);
  return rows.map(toPresence);
}

export async function maxPresenceStreamId(db: Db): Promise<number> {
  const row = await db('presence').max({ m: 'stream_id' }).first();
  return Number(row?.m ?? 0);
}
