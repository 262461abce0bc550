import type { Db } from '../database.js';

// MSC2753 peeks, one row per (user, device, room); `id` is the peek's position in the /sync `peeks` topic.

export interface PeekRow {
  id: number;
  roomId: string;
}

/** Records a peek unless the device already has one for the room; returns the peek's position. */
export async function insertPeek(db: Db, peek: { userId: string; deviceId: string; roomId: string; createdTs: number }): Promise<number> {
  const key = { user_id: peek.userId, device_id: peek.deviceId, room_id: peek.roomId };
  await db('room_peeks').insert({ ...key, created_ts: peek.createdTs }).onConflict(['user_id', 'device_id', 'room_id']).ignore();
  const row = await db('room_peeks').where(key).first('id');
  return Number(row.id);
}

export async function deletePeek(db: Db, userId: string, deviceId: string, roomId: string): Promise<number> {
  return db('room_peeks').where({ user_id: userId, device_id: deviceId, room_id: roomId }).delete();
}

/** Every device of the user stops peeking into the room (the user joined it). */
export async function deleteUserPeeksInRoom(db: Db, userId: string, roomId: string): Promise<number> {
  return db('room_peeks').where({ user_id: userId, room_id: roomId }).delete();
}

/** Nobody peeks into the room any more (it stopped being world-readable). */
export async function deleteRoomPeeks(db: Db, roomId: string): Promise<number> {
  return db('room_peeks').where({ room_id: roomId }).delete();
}

export async function deleteDevicePeeks(db: Db, userId: string, deviceIds: readonly string[]): Promise<number> {
  if (deviceIds.length === 0) return 0;
  return db('room_peeks').where({ user_id: userId }).whereIn('device_id', deviceIds).delete();
}

/** The device's peeks, oldest first. */
export async function devicePeeks(db: Db, userId: string, deviceId: string): Promise<PeekRow[]> {
  const rows = await db('room_peeks').where({ user_id: userId, device_id: deviceId }).orderBy('id').select('id', 'room_id');
  return rows.map((r: { id: number | string; room_id: string }) => ({ id: Number(r.id), roomId: r.room_id }));
}

export async function countDevicePeeks(db: Db, userId: string, deviceId: string): Promise<number> {
  const row = await db('room_peeks').where({ user_id: userId, device_id: deviceId }).count({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

export async function maxPeekId(db: Db): Promise<number> {
  const row = await db('room_peeks').max({ m: 'id' }).first();
  return Number(row?.m ?? 0);
}
