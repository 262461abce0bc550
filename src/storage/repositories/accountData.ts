import type { Db } from '../database.js';

/** A row of account data; `roomId` is '' for global account data. */
export interface AccountDataRow {
  streamId: number;
  roomId: string;
  type: string;
  content: Record<string, unknown>;
}

interface Row {
  stream_id: number;
  room_id: string;
  type: string;
  content: string;
}

const toRow = (r: Row): AccountDataRow => ({
  streamId: Number(r.stream_id),
  roomId: r.room_id,
  type: r.type,
  content: JSON.parse(r.content) as Record<string, unknown>,
});

/**
 * Sets one entry. Delete + insert gives the entry a new stream position (autoincrement ids are never
 * reused), so a change is always found by `changedAccountData`. Call inside a stream-write transaction.
 */
export async function putAccountData(db: Db, userId: string, roomId: string, type: string, content: Record<string, unknown>): Promise<number> {
  await db('account_data').where({ user_id: userId, room_id: roomId, type }).delete();
  const [row] = await db('account_data')
    .insert({ user_id: userId, room_id: roomId, type, content: JSON.stringify(content) })
    .returning('stream_id');
  return Number(typeof row === 'object' ? (row as { stream_id: number }).stream_id : row);
}

export async function getAccountData(db: Db, userId: string, roomId: string, type: string): Promise<Record<string, unknown> | undefined> {
  const row = await db('account_data').where({ user_id: userId, room_id: roomId, type }).first('content');
  return row ? (JSON.parse(row.content) as Record<string, unknown>) : undefined;
}

/** Everything of a user up to `toInclusive`; `roomIds` limits the room entries (global ones always come). */
export async function allAccountData(db: Db, userId: string, toInclusive: number): Promise<AccountDataRow[]> {
  const rows: Row[] = await db('account_data')
    .where('user_id', userId)
    .andWhere('stream_id', '<=', toInclusive)
    .orderBy('stream_id')
    .select('stream_id', 'room_id', 'type', 'content');
  return rows.map(toRow);
}

/** Entries changed in (fromExclusive, toInclusive]. */
export async function changedAccountData(db: Db, userId: string, fromExclusive: number, toInclusive: number): Promise<AccountDataRow[]> {
  const rows: Row[] = await db('account_data')
    .where('user_id', userId)
    .andWhere('stream_id', '>', fromExclusive)
    .andWhere('stream_id', '<=', toInclusive)
    .orderBy('stream_id')
    .select('stream_id', 'room_id', 'type', 'content');
  return rows.map(toRow);
}

export async function roomAccountData(db: Db, userId: string, roomIds: readonly string[], toInclusive: number): Promise<AccountDataRow[]> {
  const out: AccountDataRow[] = [];
  for (let i = 0; i < roomIds.length; i += 500) {
    const rows: Row[] = await db('account_data')
      .where('user_id', userId)
      .whereIn('room_id', roomIds.slice(i, i + 500) as string[])
      .andWhere('stream_id', '<=', toInclusive)
      .orderBy('stream_id')
      .select('stream_id', 'room_id', 'type', 'content');
    out.push(...rows.map(toRow));
  }
  return out;
}

export async function maxAccountDataStreamId(db: Db): Promise<number> {
  const row = await db('account_data').max({ m: 'stream_id' }).first();
  return Number(row?.m ?? 0);
}

/** Every entry of one type (global and per room), e.g. all of a user's `m.tag` entries. */
export async function accountDataOfType(db: Db, userId: string, type: string): Promise<AccountDataRow[]> {
  const rows: Row[] = await db('account_data').where({ user_id: userId, type }).select('stream_id', 'room_id', 'type', 'content');
  return rows.map(toRow);
}
