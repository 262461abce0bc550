import type { Db } from '../database.js';

export interface UiaSessionRecord {
  sessionId: string;
  createdTs: number;
  userId: string | null;
  fingerprint: string;
  completed: string[];
  params: Record<string, unknown>;
  data: Record<string, unknown>;
}

export async function getUiaSession(db: Db, sessionId: string): Promise<UiaSessionRecord | undefined> {
  const row = await db('uia_sessions').where({ session_id: sessionId }).first();
  if (!row) return undefined;
  return {
    sessionId: row.session_id,
    createdTs: Number(row.created_ts),
    userId: row.user_id,
    fingerprint: row.request_fingerprint,
    completed: JSON.parse(row.completed_json) as string[],
    params: JSON.parse(row.params_json) as Record<string, unknown>,
    data: JSON.parse(row.data_json) as Record<string, unknown>,
  };
}

export async function insertUiaSession(db: Db, s: UiaSessionRecord): Promise<void> {
  await db('uia_sessions').insert({
    session_id: s.sessionId,
    created_ts: s.createdTs,
    user_id: s.userId,
    request_fingerprint: s.fingerprint,
    completed_json: JSON.stringify(s.completed),
    params_json: JSON.stringify(s.params),
    data_json: JSON.stringify(s.data),
  });
}

export async function updateUiaSession(db: Db, sessionId: string, completed: string[], data: Record<string, unknown>): Promise<void> {
  await db('uia_sessions')
    .where({ session_id: sessionId })
    .update({ completed_json: JSON.stringify(completed), data_json: JSON.stringify(data) });
}

export async function deleteUiaSession(db: Db, sessionId: string): Promise<void> {
  await db('uia_sessions').where({ session_id: sessionId }).delete();
}

/** Deletes sessions created before `beforeTs`; returns their private data (to release what they hold). */
export async function deleteExpiredUiaSessions(db: Db, beforeTs: number): Promise<Array<Record<string, unknown>>> {
  const rows = (await db('uia_sessions').where('created_ts', '<', beforeTs).select('session_id', 'data_json')) as Array<{
    session_id: string;
    data_json: string;
  }>;
  if (rows.length === 0) return [];
  await db('uia_sessions').whereIn('session_id', rows.map((r) => r.session_id)).delete();
  return rows.map((r) => JSON.parse(r.data_json) as Record<string, unknown>);
}
