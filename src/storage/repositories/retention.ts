import type { Db } from '../database.js';

// Rows of the retention purge (src/rooms/retentionService.ts): room policies, progress, and what a purge removes.

const CHUNK = 500;

/** Every room with current state, with the content of its current m.room.retention event if it has one. */
export async function roomsWithRetention(db: Db): Promise<Map<string, Record<string, unknown> | undefined>> {
  const out = new Map<string, Record<string, unknown> | undefined>();
  const rooms: Array<{ room_id: string }> = await db('rooms').whereNotNull('current_state_group').select('room_id');
  for (const r of rooms) out.set(r.room_id, undefined);
  const rows: Array<{ room_id: string; json: string }> = await db('current_state as c')
    .join('events as e', 'e.event_id', 'c.event_id')
    .where({ 'c.type': 'm.room.retention', 'c.state_key': '' })
    .select('c.room_id', 'e.json');
  for (const row of rows) {
    try {
      const content = (JSON.parse(row.json) as { content?: unknown }).content;
      out.set(row.room_id, typeof content === 'object' && content !== null ? (content as Record<string, unknown>) : undefined);
    } catch {
      out.set(row.room_id, undefined);
    }
  }
  return out;
}

/** The content of one room's current m.room.retention event, if any. */
export async function retentionContentOf(db: Db, roomId: string): Promise<Record<string, unknown> | undefined> {
  const row: { json: string } | undefined = await db('current_state as c')
    .join('events as e', 'e.event_id', 'c.event_id')
    .where({ 'c.room_id': roomId, 'c.type': 'm.room.retention', 'c.state_key': '' })
    .first('e.json');
  if (!row) return undefined;
  const content = (JSON.parse(row.json) as { content?: unknown }).content;
  return typeof content === 'object' && content !== null ? (content as Record<string, unknown>) : undefined;
}

export interface PurgeProgress {
  roomId: string;
  cutoffTs: number;
}

export async function unfinishedPurges(db: Db): Promise<PurgeProgress[]> {
  const rows: Array<{ room_id: string; cutoff_ts: number | string }> = await db('retention_purges').select('room_id', 'cutoff_ts');
  return rows.map((r) => ({ roomId: r.room_id, cutoffTs: Number(r.cutoff_ts) }));
}

/** Records (or moves forward) the purge of a room before anything is deleted. */
export async function recordPurge(db: Db, roomId: string, cutoffTs: number, now: number): Promise<void> {
  await db('retention_purges').insert({ room_id: roomId, cutoff_ts: cutoffTs, started_ts: now }).onConflict('room_id').merge(['cutoff_ts', 'started_ts']);
}

export async function finishPurge(db: Db, roomId: string): Promise<void> {
  await db('retention_purges').where({ room_id: roomId }).delete();
}

/**
 * The next events a purge removes: the room's non-state events sent before `cutoffTs`, except its forward
 * extremities (new events are built on them). State events stay, as in Synapse: the state of every event
 * left refers to them.
 */
export async function purgeCandidates(db: Db, roomId: string, cutoffTs: number, limit: number): Promise<string[]> {
  const rows: Array<{ event_id: string }> = await db('events as e')
    .where('e.room_id', roomId)
    .whereNull('e.state_key')
    .andWhere('e.origin_server_ts', '<', cutoffTs)
    .whereNotExists(db('forward_extremities as f').whereRaw('f.event_id = e.event_id').andWhere('f.room_id', roomId))
    .orderBy('e.stream_ordering', 'asc')
    .limit(limit)
    .select('e.event_id');
  return rows.map((r) => r.event_id);
}

/** The room's non-state forward extremities sent before `cutoffTs`: kept for the DAG, their content pruned. */
export async function oldExtremities(db: Db, roomId: string, cutoffTs: number): Promise<Array<{ eventId: string; json: string }>> {
  const rows: Array<{ event_id: string; json: string }> = await db('forward_extremities as f')
    .join('events as e', 'e.event_id', 'f.event_id')
    .where('f.room_id', roomId)
    .whereNull('e.state_key')
    .andWhere('e.origin_server_ts', '<', cutoffTs)
    .select('e.event_id', 'e.json');
  return rows.map((r) => ({ eventId: r.event_id, json: r.json }));
}

/** Events outside `eventIds` that one of them redacted (their stored JSON must become the redacted form). */
export async function keptEventsRedactedBy(db: Db, eventIds: readonly string[]): Promise<Array<{ eventId: string; json: string }>> {
  const out: Array<{ eventId: string; json: string }> = [];
  const purged = new Set(eventIds);
  for (let i = 0; i < eventIds.length; i += CHUNK) {
    const rows: Array<{ event_id: string; json: string }> = await db('events').whereIn('redacted_by', eventIds.slice(i, i + CHUNK)).select('event_id', 'json');
    for (const r of rows) if (!purged.has(r.event_id)) out.push({ eventId: r.event_id, json: r.json });
  }
  return out;
}

export async function replaceEventJson(db: Db, eventId: string, json: string): Promise<void> {
  await db('events').where({ event_id: eventId }).update({ json });
}

/** Deletes the event rows and the redaction rows they made (a redaction of a kept event stays applied, see above). */
export async function deleteEventRows(db: Db, eventIds: readonly string[]): Promise<void> {
  for (let i = 0; i < eventIds.length; i += CHUNK) {
    const chunk = eventIds.slice(i, i + CHUNK);
    await db('redactions').whereIn('event_id', chunk).delete();
    await db('events').whereIn('event_id', chunk).delete();
  }
}
