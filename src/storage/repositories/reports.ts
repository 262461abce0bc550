import type { Db } from '../database.js';

// Spec: Client-Server API, "Reporting content": reports of rooms, events and users, for the admins.

export interface NewReport {
  reporter: string;
  roomId: string | null;
  eventId: string | null;
  targetUserId: string | null;
  reason: string | null;
  score: number | null;
  receivedTs: number;
}

export interface ReportRecord extends NewReport {
  id: number;
}

export async function insertReport(db: Db, r: NewReport): Promise<number> {
  const [row] = await db('reports')
    .insert({
      reporter: r.reporter,
      room_id: r.roomId,
      event_id: r.eventId,
      target_user_id: r.targetUserId,
      reason: r.reason,
      score: r.score,
      received_ts: r.receivedTs,
    })
    .returning('id');
  return Number(typeof row === 'object' ? (row as { id: number }).id : row);
}

/** Newest first; `before` pages by id (for an admin listing). */
export async function listReports(db: Db, opts: { limit: number; before?: number; roomId?: string }): Promise<ReportRecord[]> {
  const q = db('reports').orderBy('id', 'desc').limit(opts.limit);
  if (opts.before !== undefined) q.where('id', '<', opts.before);
  if (opts.roomId !== undefined) q.where('room_id', opts.roomId);
  const rows: Array<Record<string, unknown>> = await q;
  return rows.map(toReport);
}

/** Synapse admin API "Show reported events": event reports, offset-paged, with their total. */
export async function eventReportsPage(
  db: Db,
  q: { from: number; limit: number; dir: 'f' | 'b'; roomId?: string | undefined; reporter?: string | undefined },
): Promise<{ reports: ReportRecord[]; total: number }> {
  const filtered = () => {
    const query = db('reports').whereNotNull('event_id');
    if (q.roomId !== undefined) query.where('room_id', q.roomId);
    if (q.reporter !== undefined) query.where('reporter', q.reporter);
    return query;
  };
  const count = (await filtered().count({ n: '*' }).first()) as { n: number | string } | undefined;
  const rows: Array<Record<string, unknown>> = await filtered()
    .orderBy('received_ts', q.dir === 'b' ? 'desc' : 'asc')
    .orderBy('id', q.dir === 'b' ? 'desc' : 'asc')
    .offset(q.from)
    .limit(q.limit);
  return { reports: rows.map(toReport), total: Number(count?.n ?? 0) };
}

export async function getReport(db: Db, id: number): Promise<ReportRecord | undefined> {
  const row = (await db('reports').where({ id }).first()) as Record<string, unknown> | undefined;
  return row ? toReport(row) : undefined;
}

export async function deleteReport(db: Db, id: number): Promise<boolean> {
  return Number(await db('reports').where({ id }).delete()) > 0;
}

function toReport(r: Record<string, unknown>): ReportRecord {
  return {
    id: Number(r.id),
    reporter: String(r.reporter),
    roomId: (r.room_id as string | null) ?? null,
    eventId: (r.event_id as string | null) ?? null,
    targetUserId: (r.target_user_id as string | null) ?? null,
    reason: (r.reason as string | null) ?? null,
    score: r.score === null || r.score === undefined ? null : Number(r.score),
    receivedTs: Number(r.received_ts),
  };
}
