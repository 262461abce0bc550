import type { Db } from '../database.js';

export interface RoomRow {
  roomId: string;
  roomVersion: string;
  creator: string | null;
  isPublic: boolean;
  currentStateGroup: number | null;
}

export async function insertRoom(db: Db, room: { roomId: string; roomVersion: string; creator: string; isPublic: boolean; createdTs: number }): Promise<void> {
  await db('rooms').insert({
    room_id: room.roomId,
    room_version: room.roomVersion,
    creator: room.creator,
    is_public: room.isPublic,
    created_ts: room.createdTs,
  });
}

export async function getRoom(db: Db, roomId: string): Promise<RoomRow | undefined> {
  const row = await db('rooms').where({ room_id: roomId }).first();
  if (!row) return undefined;
  return {
    roomId: row.room_id,
    roomVersion: row.room_version,
    creator: row.creator,
    isPublic: Boolean(row.is_public),
    currentStateGroup: row.current_state_group === null ? null : Number(row.current_state_group),
  };
}

export async function setCurrentStateGroup(db: Db, roomId: string, group: number): Promise<void> {
  await db('rooms').where({ room_id: roomId }).update({ current_state_group: group });
}

export async function setRoomPublic(db: Db, roomId: string, isPublic: boolean): Promise<void> {
  await db('rooms').where({ room_id: roomId }).update({ is_public: isPublic });
}

export async function publicRoomIds(db: Db): Promise<string[]> {
  const rows: Array<{ room_id: string }> = await db('rooms').where({ is_public: true }).select('room_id');
  return rows.map((r) => r.room_id);
}

export async function getAlias(db: Db, alias: string): Promise<{ roomId: string; creator: string | null } | undefined> {
  const row = await db('room_aliases').where({ room_alias: alias }).first();
  return row ? { roomId: row.room_id, creator: row.creator } : undefined;
}

/** Returns false when the alias already exists. */
export async function insertAlias(db: Db, alias: string, roomId: string, creator: string, ts: number): Promise<boolean> {
  const inserted = await db('room_aliases')
    .insert({ room_alias: alias, room_id: roomId, creator, created_ts: ts })
    .onConflict('room_alias')
    .ignore()
    .returning('room_alias');
  return inserted.length > 0;
}

export async function deleteAlias(db: Db, alias: string): Promise<void> {
  await db('room_aliases').where({ room_alias: alias }).delete();
}

export async function aliasesForRoom(db: Db, roomId: string): Promise<string[]> {
  const rows: Array<{ room_alias: string }> = await db('room_aliases').where({ room_id: roomId }).orderBy('room_alias');
  return rows.map((r) => r.room_alias);
}

export async function forgetRoom(db: Db, userId: string, roomId: string): Promise<void> {
  await db('forgotten_rooms').insert({ user_id: userId, room_id: roomId }).onConflict(['user_id', 'room_id']).ignore();
}

export async function unforgetRoom(db: Db, userId: string, roomId: string): Promise<void> {
  await db('forgotten_rooms').where({ user_id: userId, room_id: roomId }).delete();
}

export async function forgottenRooms(db: Db, userId: string): Promise<Set<string>> {
  const rows: Array<{ room_id: string }> = await db('forgotten_rooms').where({ user_id: userId });
  return new Set(rows.map((r) => r.room_id));
}
/** Points every local alias of `fromRoomId` at `toRoomId` (room upgrades); returns the aliases moved. */
export async function moveRoomAliases(db: Db, fromRoomId: string, toRoomId: string): Promise<string[]> {
  const rows: Array<{ room_alias: string }> = await db('room_aliases').where({ room_id: fromRoomId }).select('room_alias');
  if (rows.length) await db('room_aliases').where({ room_id: fromRoomId }).update({ room_id: toRoomId });
  return rows.map((r) => r.room_alias).sort();
}
