import { randomBytes } from 'node:crypto';
import { invalidParam, notFound } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import {
  blockRoom,
  insertRoomDeletion,
  interruptedRoomDeletions,
  roomDeletion,
  roomDeletionsOf,
  roomEventIdsAfter,
  roomVisibleToAdmin,
  updateRoomDeletion,
  type RoomDeletionRow,
} from '../storage/repositories/adminRooms.js';
import { aliasesForRoom, deleteAlias, forgetRoom, moveRoomAliases, setRoomPublic } from '../storage/repositories/rooms.js';
import { ROOM_CONFIG_TYPES, pruneStoredEvents } from './eventPurge.js';
import type { RoomService } from './roomService.js';

// Synapse admin API, "Delete Room API": local users leave (and join a new room if asked), local aliases move
// or go, the room leaves the directory, is blocked if asked, and with `purge` every event keeps only its
// redacted form (the erasure's purge, rooms/eventPurge.ts) and the admin API shows the room no more.
// Each deletion is a row (migrations/0026) with its status; one a stopped process left resumes at start-up.

export interface DeleteRoomParams {
  newRoomUserId?: string | undefined;
  roomName?: string | undefined;
  message?: string | undefined;
  block: boolean;
  purge: boolean;
}

const DEFAULT_ROOM_NAME = 'Content Violation Notification';
const DEFAULT_MESSAGE = 'Sharing illegal content on this server is not permitted and rooms in violation will be blocked.';
const PAGE = 200;

export interface RoomDeletionDeps extends ServiceDeps {
  rooms: RoomService;
}

export function deletionStatus(d: RoomDeletionRow): Record<string, unknown> {
  return { delete_id: d.deleteId, status: d.status, ...(d.error !== null ? { error: d.error } : {}), shutdown_room: d.result };
}

export class RoomDeletions {
  private readonly running = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(private readonly deps: RoomDeletionDeps) {}

  /** Checks the request; unknown rooms are 404 unless they are only to be blocked (as Synapse lets admins pre-block). */
  private async check(roomId: string, p: DeleteRoomParams): Promise<boolean> {
    if (!/^![^\s]+$/.test(roomId) || roomId.length > 255) throw invalidParam(`${roomId.slice(0, 100)} is not a legal room ID`);
    if (p.newRoomUserId !== undefined) {
      if (!p.newRoomUserId.endsWith(`:${this.deps.serverName}`) || !p.newRoomUserId.startsWith('@')) throw invalidParam(`User must be our own: ${p.newRoomUserId}`);
      if (!(await this.deps.db.knex('users').where({ user_id: p.newRoomUserId, deactivated: false }).first('user_id'))) throw notFound('new_room_user_id not found');
    }
    const known = await roomVisibleToAdmin(this.deps.db.knex, roomId);
    if (!known && !p.block) throw notFound('Room not found');
    return known;
  }

  /** `DELETE /_synapse/admin/v1/rooms/{roomId}`: runs to the end, answers the shutdown result. */
  async deleteNow(requester: string, roomId: string, p: DeleteRoomParams): Promise<RoomDeletionRow['result']> {
    const known = await this.check(roomId, p);
    if (!known) {
      await blockRoom(this.deps.db.knex, roomId, requester, this.deps.clock.now());
      return { kicked_users: [], failed_to_kick_users: [], local_aliases: [], new_room_id: null };
    }
    const deleteId = await this.record(requester, roomId, p);
    await this.run(deleteId);
    const done = await roomDeletion(this.deps.db.knex, deleteId);
    if (done?.status === 'failed') throw new Error(`room deletion failed: ${done.error ?? 'unknown'}`);
    return done!.result;
  }

  /** `DELETE /_synapse/admin/v2/rooms/{roomId}`: starts the deletion, answers its id at once. */
  async start(requester: string, roomId: string, p: DeleteRoomParams): Promise<string> {
    const known = await this.check(roomId, p);
    if (!known) await blockRoom(this.deps.db.knex, roomId, requester, this.deps.clock.now());
    const deleteId = await this.record(requester, roomId, p);
    if (!known) await updateRoomDeletion(this.deps.db.knex, deleteId, { status: 'complete' }, this.deps.clock.now());
    else void this.run(deleteId);
    return deleteId;
  }

  async status(deleteId: string): Promise<RoomDeletionRow> {
    const d = deleteId.length <= 64 ? await roomDeletion(this.deps.db.knex, deleteId) : undefined;
    if (!d) throw notFound(`delete id '${deleteId.slice(0, 64)}' not found`);
    return d;
  }

  async statusOfRoom(roomId: string): Promise<RoomDeletionRow[]> {
    const rows = roomId.length <= 255 ? await roomDeletionsOf(this.deps.db.knex, roomId) : [];
    if (!rows.length) throw notFound(`No delete task for room_id '${roomId.slice(0, 100)}' found`);
    return rows;
  }

  /** Resumes deletions a previous process left unfinished (at start-up, not awaited). */
  resume(): void {
    void interruptedRoomDeletions(this.deps.db.knex)
      .then((rows) => {
        for (const d of rows) {
          this.deps.logger.info({ roomId: d.roomId, deleteId: d.deleteId }, 'resuming room deletion');
          void this.run(d.deleteId);
        }
      })
      .catch((err: unknown) => this.deps.logger.error({ err }, 'reading room deletions failed'));
  }

  async close(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.running.values()]);
  }

  /** Resolves when no deletion runs (tests). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running.values()]);
  }

  private async record(requester: string, roomId: string, p: DeleteRoomParams): Promise<string> {
    const deleteId = randomBytes(12).toString('base64url');
    await insertRoomDeletion(this.deps.db.knex, { deleteId, roomId, requester, purge: p.purge, params: p, now: this.deps.clock.now() });
    return deleteId;
  }

  private run(deleteId: string): Promise<void> {
    const current = this.running.get(deleteId);
    if (current) return current;
    const p = this.runDeletion(deleteId)
      .catch(async (err: unknown) => {
        if (this.stopping) return;
        this.deps.logger.error({ err, deleteId }, 'room deletion failed');
        await updateRoomDeletion(this.deps.db.knex, deleteId, { status: 'failed', error: (err as Error).message ?? String(err) }, this.deps.clock.now()).catch(() => undefined);
      })
      .finally(() => this.running.delete(deleteId));
    this.running.set(deleteId, p);
    return p;
  }

  private async runDeletion(deleteId: string): Promise<void> {
    const { db, clock, logger } = this.deps;
    const d = await roomDeletion(db.knex, deleteId);
    if (!d) return;
    const p = d.params as unknown as DeleteRoomParams;
    const roomId = d.roomId;
    const result = d.result;
    const save = (status: RoomDeletionRow['status']) => updateRoomDeletion(db.knex, deleteId, { status, result }, clock.now());
    if (p.block) await blockRoom(db.knex, roomId, d.requester, clock.now());
    if (p.newRoomUserId !== undefined && result.new_room_id === null) {
      const created = await this.deps.rooms.createRoom(
        { userId: p.newRoomUserId },
        { preset: 'public_chat', name: p.roomName ?? DEFAULT_ROOM_NAME, power_level_content_override: { users_default: -10 } },
      );
      result.new_room_id = created.roomId;
      await save('shutting_down');
    }
    const local = (await db.knex('current_state').where({ room_id: roomId, type: 'm.room.member' }).whereIn('membership', ['join', 'invite', 'knock']).select('state_key', 'membership')) as Array<{
      state_key: string;
      membership: string;
    }>;
    for (const { state_key: userId, membership } of local.filter((m) => m.state_key.endsWith(`:${this.deps.serverName}`))) {
      if (this.stopping) throw new Error('server stopping');
      try {
        // The user leaves themselves (as Synapse), so no power level is needed and no one is named as kicker.
        await this.deps.rooms.setMembership({ userId }, roomId, userId, 'leave');
        await forgetRoom(db.knex, userId, roomId);
        if (result.new_room_id !== null && membership === 'join') await this.deps.rooms.join({ userId }, result.new_room_id);
        result.kicked_users.push(userId);
      } catch (err) {
        logger.warn({ roomId, userId, err: (err as Error).message }, 'room deletion: user could not leave');
        result.failed_to_kick_users.push(userId);
      }
      await save('shutting_down');
    }
    if (result.new_room_id !== null) {
      await this.deps.rooms.sendEvent({ userId: p.newRoomUserId! }, result.new_room_id, { type: 'm.room.message', content: { body: p.message ?? DEFAULT_MESSAGE, msgtype: 'm.text' } });
      result.local_aliases.push(...(await moveRoomAliases(db.knex, roomId, result.new_room_id)));
    } else {
      const aliases = await aliasesForRoom(db.knex, roomId);
      for (const alias of aliases) await deleteAlias(db.knex, alias);
      result.local_aliases.push(...aliases);
    }
    await setRoomPublic(db.knex, roomId, false);
    if (!p.purge) return save('complete');
    await save('purging');
    await this.purge(roomId);
    logger.info({ roomId, deleteId }, 'room purged');
    await save('complete');
  }

  /** Every event of the room keeps only its redacted form (room configuration state excepted, as in erasure). */
  private async purge(roomId: string): Promise<void> {
    let after = Number.MIN_SAFE_INTEGER;
    for (;;) {
      if (this.stopping) throw new Error('server stopping');
      const page = await roomEventIdsAfter(this.deps.db.knex, roomId, after, PAGE);
      if (!page.length) return;
      after = page[page.length - 1]!.streamOrdering;
      const ids = page.filter((e) => !(e.isState && ROOM_CONFIG_TYPES.has(e.type))).map((e) => e.eventId);
      await pruneStoredEvents(this.deps.rooms, this.deps.db, roomId, ids);
    }
  }

}
