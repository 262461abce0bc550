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
  return rows.map((r) => ({
    id: Number(r.id),
    reporter: String(r.reporter),
    roomId: (r.room_id as string | null) ?? null,
    eventId: (r.event_id as string | null) ?? null,
    targetUserId: (r.target_user_id as string | null) ?? null,
    reason: (r.reason as string | null) ?? null,
    score: r.score === null || r.score === undefined ? null : Number(r.score),
    receivedTs: Number(r.received_ts),
  }));
}
