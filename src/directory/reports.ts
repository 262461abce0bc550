import { notFound } from '../errors.js';
import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { insertReport, listReports, type ReportRecord } from '../storage/repositories/reports.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import { currentMembership, roomsForUser } from '../storage/repositories/state.js';
import { getUser } from '../storage/repositories/users.js';

// Spec: Client-Server API, "Reporting content": events (reporter joined to the room), rooms and users.

export class ReportService {
  constructor(private readonly deps: ServiceDeps & { rooms: RoomService }) {}

  /** 404 for an unknown event, one outside the room, one the reporter cannot see, or a reporter not joined. */
  async reportEvent(reporter: string, roomId: string, eventId: string, reason: string | undefined, score: number | undefined): Promise<number> {
    const { db, rooms } = this.deps;
    const missing = () => notFound('The event was not found or you are not joined to the room.');
    if ((await currentMembership(db.knex, roomId, reporter))?.membership !== 'join') throw missing();
    const ev = await rooms.events.get(db.knex, eventId);
    if (!ev || ev.pdu.room_id !== roomId || ev.rejected) throw missing();
    if ((await rooms.reader.filterVisible(reporter, roomId, [ev])).length === 0) throw missing();
    return this.store({ reporter, roomId, eventId, targetUserId: ev.pdu.sender, reason: reason ?? null, score: score ?? null });
  }

  /** Anyone may report a room this server knows (spec v1.13). */
  async reportRoom(reporter: string, roomId: string, reason: string): Promise<number> {
    if (!(await roomsRepo.getRoom(this.deps.db.knex, roomId))) throw notFound('The room was not found.');
    return this.store({ reporter, roomId, eventId: null, targetUserId: null, reason, score: null });
  }

  /** A local account, or a user of another server this server has seen in a room (spec v1.14). */
  async reportUser(reporter: string, userId: string, reason: string): Promise<number> {
    const { db, serverName } = this.deps;
    const known = userId.endsWith(`:${serverName}`)
      ? (await getUser(db.knex, userId)) !== undefined
      : (await roomsForUser(db.knex, userId, ['join', 'invite', 'knock', 'leave', 'ban'])).length > 0;
    if (!known) throw notFound('The user was not found.');
    return this.store({ reporter, roomId: null, eventId: null, targetUserId: userId, reason, score: null });
  }

  /** Newest first, for admin tooling. */
  list(opts: { limit: number; before?: number; roomId?: string }): Promise<ReportRecord[]> {
    return listReports(this.deps.db.knex, opts);
  }

  private async store(r: Omit<ReportRecord, 'id' | 'receivedTs'>): Promise<number> {
    const id = await insertReport(this.deps.db.knex, { ...r, receivedTs: this.deps.clock.now() });
    this.deps.logger.info({ reportId: id, roomId: r.roomId, eventId: r.eventId }, 'content reported');
    return id;
  }
}
