import type { Db } from '../database.js';

// Public keys, signatures and queued to-device messages. Repositories never open transactions.

export async function getDeviceKeys(db: Db, userId: string, deviceIds?: readonly string[]): Promise<Map<string, Record<string, unknown>>> {
  const q = db('device_keys').where({ user_id: userId });
  if (deviceIds && deviceIds.length) q.whereIn('device_id', deviceIds as string[]);
  const rows: Array<{ device_id: string; key_json: string }> = await q;
  return new Map(rows.map((r) => [r.device_id, JSON.parse(r.key_json) as Record<string, unknown>]));
}

export async function setDeviceKeys(db: Db, userId: string, deviceId: string, keys: Record<string, unknown>): Promise<void> {
  await db('device_keys')
    .insert({ user_id: userId, device_id: deviceId, key_json: JSON.stringify(keys) })
    .onConflict(['user_id', 'device_id'])
    .merge(['key_json']);
}

export async function deleteDeviceE2ee(db: Db, userId: string, deviceIds: readonly string[]): Promise<void> {
  for (const table of ['device_keys', 'one_time_keys', 'fallback_keys', 'to_device_messages']) {
    await db(table).where({ user_id: userId }).whereIn('device_id', deviceIds as string[]).delete();
  }
  await db('key_signatures').where({ target_user_id: userId }).whereIn('target_key_id', deviceIds as string[]).delete();
  await db('dehydrated_devices').where({ user_id: userId }).whereIn('device_id', deviceIds as string[]).delete();
}

export async function getOneTimeKey(db: Db, userId: string, deviceId: string, algorithm: string, keyId: string): Promise<string | undefined> {
  const row = await db('one_time_keys').where({ user_id: userId, device_id: deviceId, algorithm, key_id: keyId }).first('key_json');
  return row?.key_json;
}

export async function insertOneTimeKeys(
  db: Db,
  userId: string,
  deviceId: string,
  keys: ReadonlyArray<{ algorithm: string; keyId: string; json: string }>,
): Promise<void> {
  const rows = keys.map((k) => ({ user_id: userId, device_id: deviceId, algorithm: k.algorithm, key_id: k.keyId, key_json: k.json }));
  for (let i = 0; i < rows.length; i += 200) await db('one_time_keys').insert(rows.slice(i, i + 200));
}

export async function countOneTimeKeys(db: Db, userId: string, deviceId: string): Promise<Record<string, number>> {
  const rows: Array<{ algorithm: string; n: number | string }> = await db('one_time_keys')
    .where({ user_id: userId, device_id: deviceId })
    .groupBy('algorithm')
    .select('algorithm')
    .count({ n: '*' });
  return Object.fromEntries(rows.map((r) => [r.algorithm, Number(r.n)]));
}

/** Removes and returns the oldest uploaded one-time key of an algorithm (spec v1.13: upload order). */
export async function takeOneTimeKey(db: Db, userId: string, deviceId: string, algorithm: string): Promise<{ keyId: string; json: string } | undefined> {
  const row = await db('one_time_keys').where({ user_id: userId, device_id: deviceId, algorithm }).orderBy('id', 'asc').first('id', 'key_id', 'key_json');
  if (!row) return undefined;
  const deleted = await db('one_time_keys').where({ id: row.id }).delete();
  return deleted ? { keyId: row.key_id, json: row.key_json } : undefined;
}

export async function setFallbackKey(db: Db, userId: string, deviceId: string, algorithm: string, keyId: string, json: string): Promise<void> {
  await db('fallback_keys')
    .insert({ user_id: userId, device_id: deviceId, algorithm, key_id: keyId, key_json: json, used: false })
    .onConflict(['user_id', 'device_id', 'algorithm'])
    .merge(['key_id', 'key_json', 'used']);
}

export async function getFallbackKey(db: Db, userId: string, deviceId: string, algorithm: string): Promise<{ keyId: string; json: string; used: boolean } | undefined> {
  const row = await db('fallback_keys').where({ user_id: userId, device_id: deviceId, algorithm }).first();
  return row ? { keyId: row.key_id, json: row.key_json, used: Boolean(row.used) } : undefined;
}

export async function markFallbackKeyUsed(db: Db, userId: string, deviceId: string, algorithm: string): Promise<void> {
  await db('fallback_keys').where({ user_id: userId, device_id: deviceId, algorithm }).update({ used: true });
}

export async function unusedFallbackKeyTypes(db: Db, userId: string, deviceId: string): Promise<string[]> {
  const rows: Array<{ algorithm: string }> = await db('fallback_keys').where({ user_id: userId, device_id: deviceId, used: false }).select('algorithm');
  return rows.map((r) => r.algorithm);
}

export type CrossSigningKeyType = 'master' | 'self_signing' | 'user_signing';

export async function getCrossSigningKeys(db: Db, userId: string): Promise<Partial<Record<CrossSigningKeyType, Record<string, unknown>>>> {
  const rows: Array<{ key_type: CrossSigningKeyType; key_json: string }> = await db('cross_signing_keys').where({ user_id: userId });
  return Object.fromEntries(rows.map((r) => [r.key_type, JSON.parse(r.key_json)]));
}

export async function setCrossSigningKey(db: Db, userId: string, type: CrossSigningKeyType, key: Record<string, unknown>): Promise<void> {
  await db('cross_signing_keys')
    .insert({ user_id: userId, key_type: type, key_json: JSON.stringify(key) })
    .onConflict(['user_id', 'key_type'])
    .merge(['key_json']);
}

export interface StoredSignature {
  targetUserId: string;
  targetKeyId: string;
  signerUserId: string;
  signerKeyId: string;
  signature: string;
}

export async function addSignature(db: Db, s: StoredSignature): Promise<void> {
  await db('key_signatures')
    .insert({
      target_user_id: s.targetUserId,
      target_key_id: s.targetKeyId,
      signer_user_id: s.signerUserId,
      signer_key_id: s.signerKeyId,
      signature: s.signature,
    })
    .onConflict(['target_user_id', 'target_key_id', 'signer_user_id', 'signer_key_id'])
    .merge(['signature']);
}

export async function signaturesFor(db: Db, targetUserIds: readonly string[]): Promise<StoredSignature[]> {
  if (!targetUserIds.length) return [];
  const rows: Array<{ target_user_id: string; target_key_id: string; signer_user_id: string; signer_key_id: string; signature: string }> = await db(
    'key_signatures',
  ).whereIn('target_user_id', targetUserIds as string[]);
  return rows.map((r) => ({
    targetUserId: r.target_user_id,
    targetKeyId: r.target_key_id,
    signerUserId: r.signer_user_id,
    signerKeyId: r.signer_key_id,
    signature: r.signature,
  }));
}

/** `onlyFor`: the one user who is told (their own signature changes); everyone sharing a room otherwise. */
export async function recordDeviceListChange(db: Db, userId: string, onlyFor?: string): Promise<number> {
  const [row] = await db('device_list_changes').insert({ user_id: userId, only_for_user_id: onlyFor ?? null }).returning('stream_id');
  return Number(typeof row === 'object' ? row.stream_id : row);
}

export async function maxDeviceListStream(db: Db): Promise<number> {
  const row = await db('device_list_changes').max({ m: 'stream_id' }).first();
  return Number(row?.m ?? 0);
}

/** Users whose devices or keys changed for everyone sharing a room with them. */
export async function usersWithDeviceChanges(db: Db, fromExclusive: number, toInclusive: number): Promise<string[]> {
  const rows: Array<{ user_id: string }> = await db('device_list_changes')
    .where('stream_id', '>', fromExclusive)
    .andWhere('stream_id', '<=', toInclusive)
    .whereNull('only_for_user_id')
    .distinct('user_id');
  return rows.map((r) => r.user_id);
}

/** Users whose keys changed for `viewer` alone (signatures `viewer` made). */
export async function usersWithDeviceChangesFor(db: Db, viewer: string, fromExclusive: number, toInclusive: number): Promise<string[]> {
  const rows: Array<{ user_id: string }> = await db('device_list_changes')
    .where('only_for_user_id', viewer)
    .andWhere('stream_id', '>', fromExclusive)
    .andWhere('stream_id', '<=', toInclusive)
    .distinct('user_id');
  return rows.map((r) => r.user_id);
}

export interface ToDeviceRow {
  streamId: number;
  sender: string;
  type: string;
  content: Record<string, unknown>;
}

/** Inserts messages and returns the highest stream id written. */
export async function insertToDevice(
  db: Db,
  rows: ReadonlyArray<{ userId: string; deviceId: string; sender: string; type: string; content: string }>,
): Promise<number> {
  let max = 0;
  const mapped = rows.map((r) => ({ user_id: r.userId, device_id: r.deviceId, sender: r.sender, type: r.type, content: r.content }));
  for (let i = 0; i < mapped.length; i += 200) {
    const ids = await db('to_device_messages').insert(mapped.slice(i, i + 200)).returning('stream_id');
    for (const id of ids) max = Math.max(max, Number(typeof id === 'object' ? id.stream_id : id));
  }
  return max;
}

export async function toDeviceAfter(db: Db, userId: string, deviceId: string, fromExclusive: number, toInclusive: number, limit: number): Promise<ToDeviceRow[]> {
  const rows: Array<{ stream_id: number | string; sender: string; type: string; content: string }> = await db('to_device_messages')
    .where({ user_id: userId, device_id: deviceId })
    .andWhere('stream_id', '>', fromExclusive)
    .andWhere('stream_id', '<=', toInclusive)
    .orderBy('stream_id', 'asc')
    .limit(limit);
  return rows.map((r) => ({ streamId: Number(r.stream_id), sender: r.sender, type: r.type, content: JSON.parse(r.content) }));
}

/** Deletes what the device has acknowledged by syncing past it. */
export async function deleteToDeviceUpTo(db: Db, userId: string, deviceId: string, upToInclusive: number): Promise<number> {
  return db('to_device_messages').where({ user_id: userId, device_id: deviceId }).andWhere('stream_id', '<=', upToInclusive).delete();
}

export async function advanceStreamHead(db: Db, stream: string, position: number): Promise<void> {
  const row = await db('stream_heads').where({ stream }).first('position');
  if (!row) await db('stream_heads').insert({ stream, position });
  else if (Number(row.position) < position) await db('stream_heads').where({ stream }).update({ position });
}

export async function readStreamHead(db: Db, stream: string): Promise<number> {
  const row = await db('stream_heads').where({ stream }).first('position');
  return Number(row?.position ?? 0);
}
