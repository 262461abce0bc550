import { notFound } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { roomSummaries } from '../storage/repositories/adminRooms.js';
import { getEvent } from '../storage/repositories/events.js';
import { deleteReport, eventReportsPage, getReport, type ReportRecord } from '../storage/repositories/reports.js';

// Synapse admin API, "Event Reports API": what users reported (spec "Reporting content"), for the admins.

export class EventReports {
  constructor(private readonly deps: ServiceDeps) {}

  async list(q: { from: number; limit: number; dir: 'f' | 'b'; roomId?: string | undefined; reporter?: string | undefined }) {
    const { reports, total } = await eventReportsPage(this.deps.db.knex, q);
    return { reports: await Promise.all(reports.map((r) => this.entry(r, false))), total };
  }

  async get(id: number): Promise<Record<string, unknown>> {
    const report = await getReport(this.deps.db.knex, id);
    if (!report || report.eventId === null) throw notFound('Event report not found');
    return this.entry(report, true);
  }

  async delete(id: number): Promise<void> {
    if (!(await deleteReport(this.deps.db.knex, id))) throw notFound('Event report not found');
  }

  /** Synapse's fields: the room's name and alias and the event's sender beside the report. */
  private async entry(r: ReportRecord, withEvent: boolean): Promise<Record<string, unknown>> {
    const [room] = r.roomId ? await roomSummaries(this.deps.db.knex, this.deps.serverName, [r.roomId]) : [];
    const event = r.eventId ? await getEvent(this.deps.db.knex, r.eventId) : undefined;
    const str = (type: string, key: string) => {
      const v = room?.state.get(type)?.[key];
      return typeof v === 'string' ? v : null;
    };
    return {
      id: r.id,
      received_ts: r.receivedTs,
      room_id: r.roomId,
      name: str('m.room.name', 'name'),
      event_id: r.eventId,
      user_id: r.reporter,
      reason: r.reason,
      score: r.score,
      sender: event?.pdu.sender ?? null,
      canonical_alias: str('m.room.canonical_alias', 'alias'),
      ...(withEvent ? { event_json: event?.pdu ?? null } : {}),
    };
  }
}
