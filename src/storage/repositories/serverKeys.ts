import type { Db } from '../database.js';

export interface ServerKeyRow {
  server_name: string;
  key_id: string;
  verify_key: string;
  valid_until_ts: number;
  expired_ts: number | null;
  fetched_ts: number;
}

export interface ServerKeysJsonRow {
  server_name: string;
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

export async function putServerKeysJson(db: Db, row: ServerKeysJsonRow): Promise<void> {
  await db('server_keys_json').insert({ ...row }).onConflict('server_name').merge(['from_server', 'key_json', 'valid_until_ts', 'fetched_ts']);
}

export async function getServerKeysJson(db: Db, serverName: string): Promise<ServerKeysJsonRow | undefined> {
  const row = await db('server_keys_json').where({ server_name: serverName }).first();
  if (!row) return undefined;
  return {
    server_name: String(row.server_name),
    from_server: String(row.from_server),
    key_json: String(row.key_json),
    valid_until_ts: Number(row.valid_until_ts),
    fetched_ts: Number(row.fetched_ts),
  };
}
