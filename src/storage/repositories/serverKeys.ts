import type { Db } from '../database.js';

export interface ServerKeyRow {
  server_name: string;
  key_id: string;
  verify_key: string;
  valid_until_ts: number;
  expired_ts: number | null;
  fetched_ts: number;
}

/** A key ID's last signed key response (notary store). */
export interface ServerKeyResponseRow {
  server_name: string;
  key_id: string;
  from_server: string;
  key_json: string;
  valid_until_ts: number;
  fetched_ts: number;
}

function toKeyRow(r: Record<string, unknown>): ServerKeyRow {
  return {
    server_name: String(r.server_name),
    key_id: String(r.key_id),
    verify_key: String(r.verify_key),
    valid_until_ts: Number(r.valid_until_ts),
    expired_ts: r.expired_ts === null || r.expired_ts === undefined ? null : Number(r.expired_ts),
    fetched_ts: Number(r.fetched_ts),
  };
}

export async function upsertServerKeys(db: Db, rows: readonly ServerKeyRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db('server_keys')
    .insert(rows.map((r) => ({ ...r })))
    .onConflict(['server_name', 'key_id'])
    .merge(['verify_key', 'valid_until_ts', 'expired_ts', 'fetched_ts']);
}

export async function getServerKey(db: Db, serverName: string, keyId: string): Promise<ServerKeyRow | undefined> {
  const row = await db('server_keys').where({ server_name: serverName, key_id: keyId }).first();
  return row ? toKeyRow(row) : undefined;
}

export async function getServerKeys(db: Db, serverName: string): Promise<ServerKeyRow[]> {
  const rows = await db('server_keys').where({ server_name: serverName });
  return rows.map(toKeyRow);
}

/** Stores `rows`, each replacing the stored response of its key ID unless that one is valid for longer. */
export async function putServerKeyResponses(db: Db, rows: readonly ServerKeyResponseRow[]): Promise<void> {
  for (const row of rows) {
    await db('server_key_responses')
      .insert({ ...row })
      .onConflict(['server_name', 'key_id'])
      .merge()
      .where('server_key_responses.valid_until_ts', '<=', row.valid_until_ts);
  }
}

/** The stored key responses of `serverName` (all its key IDs, or those of `keyIds`). */
export async function getServerKeyResponses(db: Db, serverName: string, keyIds?: readonly string[]): Promise<ServerKeyResponseRow[]> {
  let q = db('server_key_responses').where({ server_name: serverName });
  if (keyIds?.length) q = q.whereIn('key_id', [...keyIds]);
  const rows = await q;
  return rows.map((r: Record<string, unknown>) => ({
    server_name: String(r.server_name),
    key_id: String(r.key_id),
    from_server: String(r.from_server),
    key_json: String(r.key_json),
    valid_until_ts: Number(r.valid_until_ts),
    fetched_ts: Number(r.fetched_ts),
  }));
}
