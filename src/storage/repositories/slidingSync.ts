import type { Db } from '../database.js';

// MSC4186 connections and their positions (migration 0025). The per-room state is opaque text here; the
// sliding sync service owns its format.

export interface ConnectionKey {
  userId: string;
  deviceId: string;
  connId: string;
}

/** The connection that `position` belongs to, if it is this user's, device's and conn_id's. */
export async function findPosition(db: Db, key: ConnectionKey, position: number): Promise<{ connectionKey: number; rooms: string; lastUsed: number } | undefined> {
  const row: { connection_key: number | string; rooms: string; last_used_ts: number | string } | undefined = await db('sliding_sync_positions as p')
    .join('sliding_sync_connections as c', 'c.connection_key', 'p.connection_key')
    .where({ 'p.position': position, 'c.user_id': key.userId, 'c.device_id': key.deviceId, 'c.conn_id': key.connId })
    .first('p.connection_key', 'p.rooms', 'c.last_used_ts');
  return row ? { connectionKey: Number(row.connection_key), rooms: row.rooms, lastUsed: Number(row.last_used_ts) } : undefined;
}

/** The client answered from `keep`: every other position of the connection is dead (lost or superseded). */
export async function deleteOtherPositions(db: Db, connectionKey: number, keep: number): Promise<void> {
  await db('sliding_sync_positions').where({ connection_key: connectionKey }).whereNot({ position: keep }).delete();
}

/** A request without `pos` starts the connection afresh. */
export async function resetConnection(db: Db, key: ConnectionKey, now: number): Promise<number> {
  const match = { user_id: key.userId, device_id: key.deviceId, conn_id: key.connId };
  const old = await db('sliding_sync_connections').where(match).first('connection_key');
  // Positions go explicitly: PostgreSQL cascades, SQLite only with foreign_keys on.
  if (old) {
    await db('sliding_sync_positions').where({ connection_key: old.connection_key }).delete();
    await db('sliding_sync_connections').where({ connection_key: old.connection_key }).delete();
  }
  const [row] = await db('sliding_sync_connections').insert({ ...match, created_ts: now, last_used_ts: now }).returning('connection_key');
  return Number(typeof row === 'object' ? (row as { connection_key: number }).connection_key : row);
}

export async function insertPosition(db: Db, connectionKey: number, rooms: string, now: number): Promise<number> {
  const [row] = await db('sliding_sync_positions').insert({ connection_key: connectionKey, rooms, created_ts: now }).returning('position');
  await db('sliding_sync_connections').where({ connection_key: connectionKey }).update({ last_used_ts: now });
  return Number(typeof row === 'object' ? (row as { position: number }).position : row);
}

export async function touchConnection(db: Db, connectionKey: number, now: number): Promise<void> {
  await db('sliding_sync_connections').where({ connection_key: connectionKey }).update({ last_used_ts: now });
}

/** Connections unused since `before` (their positions with them). */
export async function deleteIdleConnections(db: Db, before: number): Promise<number> {
  const keys = (await db('sliding_sync_connections').where('last_used_ts', '<', before).select('connection_key')).map((r: { connection_key: number }) => r.connection_key);
  if (!keys.length) return 0;
  await db('sliding_sync_positions').whereIn('connection_key', keys).delete();
  await db('sliding_sync_connections').whereIn('connection_key', keys).delete();
  return keys.length;
}

/** A deleted device's (or user's) connections. */
export async function deleteConnectionsOf(db: Db, userId: string, deviceIds?: readonly string[]): Promise<void> {
  const q = db('sliding_sync_connections').where({ user_id: userId });
  if (deviceIds) q.whereIn('device_id', deviceIds);
  const keys = (await q.select('connection_key')).map((r: { connection_key: number }) => r.connection_key);
  if (!keys.length) return;
  await db('sliding_sync_positions').whereIn('connection_key', keys).delete();
  await db('sliding_sync_connections').whereIn('connection_key', keys).delete();
}
