import type { Db } from '../database.js';

// Device lists across federation (migrations/0012_remote_devices.ts). Repositories never open transactions.

type KeyObject = Record<string, unknown>;

export interface RemoteDeviceList {
  userId: string;
  streamId: number;
  stale: boolean;
  masterKey: KeyObject | undefined;
  selfSigningKey: KeyObject | undefined;
  updatedTs: number;
}

export interface RemoteDevice {
  deviceId: string;
  displayName: string | undefined;
  keys: KeyObject | undefined;
}

const parse = (s: string | null | undefined): KeyObject | undefined => (s ? (JSON.parse(s) as KeyObject) : undefined);

export async function getRemoteDeviceList(db: Db, userId: string): Promise<RemoteDeviceList | undefined> {
  const row = await db('remote_device_lists').where({ user_id: userId }).first();
  if (!row) return undefined;
  return {
    userId,
    streamId: Number(row.stream_id),
    stale: Boolean(row.stale),
    masterKey: parse(row.master_key),
    selfSigningKey: parse(row.self_signing_key),
    updatedTs: Number(row.updated_ts),
  };
}

export async function getRemoteDevices(db: Db, userId: string): Promise<RemoteDevice[]> {
  const rows: Array<{ device_id: string; display_name: string | null; key_json: string | null }> = await db('remote_devices')
    .where({ user_id: userId })
    .orderBy('device_id');
  return rows.map((r) => ({ deviceId: r.device_id, displayName: r.display_name ?? undefined, keys: parse(r.key_json) }));
}

/** Creates or updates the list's header row; keys left undefined keep their stored value. */
export async function saveRemoteDeviceList(
  db: Db,
  list: { userId: string; streamId: number; stale: boolean; updatedTs: number; masterKey?: KeyObject | null; selfSigningKey?: KeyObject | null },
): Promise<void> {
  const row: Record<string, unknown> = { user_id: list.userId, stream_id: list.streamId, stale: list.stale, updated_ts: list.updatedTs };
  const merge = ['stream_id', 'stale', 'updated_ts'];
  if (list.masterKey !== undefined) {
    row.master_key = list.masterKey === null ? null : JSON.stringify(list.masterKey);
    merge.push('master_key');
  }
  if (list.selfSigningKey !== undefined) {
    row.self_signing_key = list.selfSigningKey === null ? null : JSON.stringify(list.selfSigningKey);
    merge.push('self_signing_key');
  }
  await db('remote_device_lists').insert(row).onConflict('user_id').merge(merge);
}

export async function markRemoteDeviceListStale(db: Db, userId: string): Promise<void> {
  await db('remote_device_lists').where({ user_id: userId }).update({ stale: true });
}

/** Forgets a remote user's cached devices (nobody here shares a room with them any more). */
export async function deleteRemoteDeviceList(db: Db, userId: string): Promise<void> {
  await db('remote_devices').where({ user_id: userId }).delete();
  await db('remote_device_lists').where({ user_id: userId }).delete();
}

export async function replaceRemoteDevices(db: Db, userId: string, devices: readonly RemoteDevice[]): Promise<void> {
  await db('remote_devices').where({ user_id: userId }).delete();
  const rows = devices.map((d) => ({
    user_id: userId,
    device_id: d.deviceId,
    display_name: d.displayName ?? null,
    key_json: d.keys === undefined ? null : JSON.stringify(d.keys),
  }));
  for (let i = 0; i < rows.length; i += 200) await db('remote_devices').insert(rows.slice(i, i + 200));
}

export async function upsertRemoteDevice(db: Db, userId: string, device: RemoteDevice): Promise<void> {
  await db('remote_devices')
    .insert({
      user_id: userId,
      device_id: device.deviceId,
      display_name: device.displayName ?? null,
      key_json: device.keys === undefined ? null : JSON.stringify(device.keys),
    })
    .onConflict(['user_id', 'device_id'])
    .merge(['display_name', 'key_json']);
}

export async function deleteRemoteDevice(db: Db, userId: string, deviceId: string): Promise<void> {
  await db('remote_devices').where({ user_id: userId, device_id: deviceId }).delete();
}

// ---- local users' device lists as announced over federation ----

export interface OutboundDeviceList {
  streamId: number;
  snapshot: Record<string, unknown>;
}

export async function getOutboundDeviceList(db: Db, userId: string): Promise<OutboundDeviceList | undefined> {
  const row = await db('local_device_list_outbound').where({ user_id: userId }).first();
  return row ? { streamId: Number(row.stream_id), snapshot: JSON.parse(row.snapshot) } : undefined;
}

export async function saveOutboundDeviceList(db: Db, userId: string, list: OutboundDeviceList): Promise<void> {
  await db('local_device_list_outbound')
    .insert({ user_id: userId, stream_id: list.streamId, snapshot: JSON.stringify(list.snapshot) })
    .onConflict('user_id')
    .merge(['stream_id', 'snapshot']);
}

// ---- m.direct_to_device idempotence ----

/** Records a received message id; false when it was seen before. */
export async function markToDeviceSeen(db: Db, origin: string, messageId: string, ts: number): Promise<boolean> {
  const inserted: unknown[] = await db('federation_to_device_seen')
    .insert({ origin, message_id: messageId, received_ts: ts })
    .onConflict(['origin', 'message_id'])
    .ignore()
    .returning('origin');
  return inserted.length > 0;
}

export async function pruneToDeviceSeen(db: Db, olderThanTs: number): Promise<number> {
  return db('federation_to_device_seen').where('received_ts', '<', olderThanTs).delete();
}
