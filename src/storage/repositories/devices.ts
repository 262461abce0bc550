import type { Db } from '../database.js';

export interface DeviceRecord {
  userId: string;
  deviceId: string;
  displayName: string | null;
  createdTs: number;
  lastSeenTs: number | null;
  lastSeenIp: string | null;
  lastSeenUserAgent: string | null;
  hidden: boolean;
}

interface DeviceRow {
  user_id: string;
  device_id: string;
  display_name: string | null;
  created_ts: number | string;
  last_seen_ts: number | string | null;
  last_seen_ip: string | null;
  last_seen_user_agent: string | null;
  hidden: boolean | number;
}

function toRecord(row: DeviceRow): DeviceRecord {
  return {
    userId: row.user_id,
    deviceId: row.device_id,
    displayName: row.display_name,
    createdTs: Number(row.created_ts),
    lastSeenTs: row.last_seen_ts === null ? null : Number(row.last_seen_ts),
    lastSeenIp: row.last_seen_ip,
    lastSeenUserAgent: row.last_seen_user_agent,
    hidden: Boolean(row.hidden),
  };
}

export async function getDevice(db: Db, userId: string, deviceId: string): Promise<DeviceRecord | undefined> {
  const row = (await db('devices').where({ user_id: userId, device_id: deviceId }).first()) as DeviceRow | undefined;
  return row ? toRecord(row) : undefined;
}

export async function listDevices(db: Db, userId: string, includeHidden = false): Promise<DeviceRecord[]> {
  const q = db('devices').where({ user_id: userId });
  if (!includeHidden) q.andWhere({ hidden: false });
  const rows = (await q.orderBy('device_id')) as DeviceRow[];
  return rows.map(toRecord);
}

/** Inserts a device; returns false when it already exists (its row is left as it was). */
export async function insertDevice(
  db: Db,
  device: { userId: string; deviceId: string; displayName: string | null; createdTs: number; ip?: string; userAgent?: string },
): Promise<boolean> {
  const inserted = await db('devices')
    .insert({
      user_id: device.userId,
      device_id: device.deviceId,
      display_name: device.displayName,
      created_ts: device.createdTs,
      last_seen_ts: device.ip !== undefined ? device.createdTs : null,
      last_seen_ip: device.ip ?? null,
      last_seen_user_agent: device.userAgent ?? null,
    })
    .onConflict(['user_id', 'device_id'])
    .ignore()
    .returning('device_id');
  return inserted.length > 0;
}

export async function updateDisplayName(db: Db, userId: string, deviceId: string, displayName: string | null): Promise<boolean> {
  const n = await db('devices').where({ user_id: userId, device_id: deviceId }).update({ display_name: displayName });
  return n > 0;
}

export async function updateLastSeen(db: Db, userId: string, deviceId: string, ts: number, ip: string, userAgent: string | undefined): Promise<void> {
  await db('devices')
    .where({ user_id: userId, device_id: deviceId })
    .update({ last_seen_ts: ts, last_seen_ip: ip.slice(0, 64), last_seen_user_agent: userAgent?.slice(0, 1024) ?? null });
}

/** Deletes the given devices of one user; returns the IDs that existed. */
export async function deleteDevices(db: Db, userId: string, deviceIds: readonly string[]): Promise<string[]> {
  if (deviceIds.length === 0) return [];
  const existing = (await db('devices').where({ user_id: userId }).whereIn('device_id', deviceIds).pluck('device_id')) as string[];
  if (existing.length > 0) await db('devices').where({ user_id: userId }).whereIn('device_id', existing).delete();
  return existing;
}

/** Deletes every device of a user except `keep`; returns the deleted IDs. */
export async function deleteAllDevices(db: Db, userId: string, keep?: string): Promise<string[]> {
  const q = db('devices').where({ user_id: userId });
  if (keep !== undefined) q.andWhereNot({ device_id: keep });
  const ids = (await q.clone().pluck('device_id')) as string[];
  if (ids.length > 0) await q.delete();
  return ids;
}

/**
 * Forgets where and with what a device was last seen when that is older than `before` (user_ips_max_age);
 * returns how many devices were cleared.
 */
export async function clearLastSeenBefore(db: Db, before: number): Promise<number> {
  return db('devices')
    .where((q) => q.where('last_seen_ts', '<', before).orWhere((q2) => q2.whereNull('last_seen_ts').andWhere((q3) => q3.whereNotNull('last_seen_ip').orWhereNotNull('last_seen_user_agent'))))
    .update({ last_seen_ts: null, last_seen_ip: null, last_seen_user_agent: null });
}
