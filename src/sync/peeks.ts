import { forbidden, invalidParam, MatrixError, notFound } from '../errors.js';
import { roomIdOfEvent } from '../rooms/eventFormat.js';
import type { RoomService } from '../rooms/roomService.js';
import type { WriteResult } from '../rooms/roomWriter.js';
import type { ServiceDeps } from '../serviceDeps.js';
import * as peeksRepo from '../storage/repositories/peeks.js';
import { getRoom } from '../storage/repositories/rooms.js';
import * as stateRepo from '../storage/repositories/state.js';

// MSC2753 peeking (as Dendrite serves it, the implementation SyTest's tests/31sync/17peeking.pl follows): a
// device follows a world-readable room in /sync under `rooms.peek` without joining it. Peeks are stored per
// device, so a restart keeps them; the /sync side is `providers/peeks.ts`.

/** Rooms one device may peek into at once: every peeked room is read on each of its syncs. */
export const MAX_PEEKS_PER_DEVICE = 100;

export interface PeekViewer {
  userId: string;
  deviceId: string | undefined;
}

// Room ids (with or without a server part, as in room version 12): printable ASCII. Aliases: a localpart of
// printable characters (surrogates only as pairs) and a server name.
const ROOM_ID = /^![\x21-\x7e]+$/;
const ROOM_ALIAS = /^#(?:[\x21-\x39\x3b-\x7e\u00a0-\ud7ff\ue000-\uffff]|[\ud800-\udbff][\udc00-\udfff])+:[\x21-\x7e]+$/;
const MAX_ID_LENGTH = 255;

export class PeekService {
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly deps: ServiceDeps & { rooms: RoomService }) {}

  private get db() {
    return this.deps.db.knex;
  }

  /** POST /peek/{roomIdOrAlias}: returns the room id; the device's next sync brings the room whole. */
  async peek(viewer: PeekViewer, roomIdOrAlias: string): Promise<string> {
    const deviceId = requireDevice(viewer);
    let roomId: string;
    if (roomIdOrAlias.startsWith('#')) {
      if (roomIdOrAlias.length > MAX_ID_LENGTH || !ROOM_ALIAS.test(roomIdOrAlias)) throw invalidParam('Invalid room alias');
      roomId = await this.deps.rooms.resolveRoomIdOrAlias(roomIdOrAlias);
    } else {
      roomId = validRoomId(roomIdOrAlias);
    }
    await this.assertKnown(roomId);
    if (!(await this.worldReadable(roomId))) throw forbidden('This room is not world-readable');
    // A member already has the room under `join`; peeking adds nothing.
    if (await this.joined(viewer.userId, roomId)) return roomId;
    if ((await peeksRepo.countDevicePeeks(this.db, viewer.userId, deviceId)) >= MAX_PEEKS_PER_DEVICE) {
      throw forbidden(`A device may peek into at most ${MAX_PEEKS_PER_DEVICE} rooms`);
    }
    await peeksRepo.insertPeek(this.db, { userId: viewer.userId, deviceId, roomId, createdTs: this.deps.clock.now() });
    // Checked again after the write: a visibility change or a join committed meanwhile has already run its clean-up.
    if (!(await this.worldReadable(roomId))) {
      await peeksRepo.deletePeek(this.db, viewer.userId, deviceId, roomId);
      throw forbidden('This room is not world-readable');
    }
    if (await this.joined(viewer.userId, roomId)) await peeksRepo.deletePeek(this.db, viewer.userId, deviceId, roomId);
    this.deps.notifier.notifyUsers([viewer.userId]);
    return roomId;
  }

  /** POST /rooms/{roomId}/unpeek: the device stops receiving the room (nothing to do if it was not peeking). */
  async unpeek(viewer: PeekViewer, roomIdParam: string): Promise<void> {
    const deviceId = requireDevice(viewer);
    const roomId = validRoomId(roomIdParam);
    await this.assertKnown(roomId);
    await peeksRepo.deletePeek(this.db, viewer.userId, deviceId, roomId);
  }

  /** The rooms the device peeks into (its long-polls wake when they get events). */
  async roomsOf(userId: string, deviceId: string | undefined): Promise<string[]> {
    if (deviceId === undefined) return [];
    return (await peeksRepo.devicePeeks(this.db, userId, deviceId)).map((p) => p.roomId);
  }

  /**
   * Subscribed to `rooms.onCommitted`: a join ends the user's peeks of the room (it moves to `join` and does
   * not come back as a peek after a leave); a room that stops being world-readable ends everyone's.
   */
  onCommitted(result: WriteResult): void {
    for (const ev of result.events) {
      const pdu = ev.pdu;
      if (ev.rejected || ev.outlier || typeof pdu.state_key !== 'string') continue;
      const roomId = roomIdOfEvent(pdu, ev.eventId);
      if (roomId === undefined) continue;
      if (pdu.type === 'm.room.member' && pdu.content.membership === 'join') {
        const userId = pdu.state_key;
        this.queue(() => peeksRepo.deleteUserPeeksInRoom(this.db, userId, roomId));
      } else if (pdu.type === 'm.room.history_visibility' && pdu.state_key === '' && pdu.content.history_visibility !== 'world_readable') {
        // Only if it is still the room's visibility (a late federated event may not be current).
        this.queue(async () => {
          if (!(await this.worldReadable(roomId))) await peeksRepo.deleteRoomPeeks(this.db, roomId);
        });
      }
    }
  }

  /** Subscribed to the users' device deletions: a deleted device's peeks go with it. */
  async onDevicesDeleted(userId: string, deviceIds: readonly string[]): Promise<void> {
    await peeksRepo.deleteDevicePeeks(this.db, userId, deviceIds);
  }

  /** Resolves once queued clean-ups are done (shutdown). */
  idle(): Promise<void> {
    return this.tail;
  }

  private queue(job: () => Promise<unknown>): void {
    this.tail = this.tail.then(job).then(
      () => undefined,
      (err: unknown) => this.deps.logger.error({ err }, 'ending peeks failed'),
    );
  }

  private async assertKnown(roomId: string): Promise<void> {
    const room = await getRoom(this.db, roomId);
    if (!room || room.currentStateGroup === null) throw notFound('Unknown room');
  }

  private async worldReadable(roomId: string): Promise<boolean> {
    const eventId = await stateRepo.getCurrentStateEventId(this.db, roomId, 'm.room.history_visibility', '');
    const ev = eventId ? await this.deps.rooms.events.get(this.db, eventId) : undefined;
    return ev?.pdu.content.history_visibility === 'world_readable';
  }

  private async joined(userId: string, roomId: string): Promise<boolean> {
    return (await stateRepo.currentMembership(this.db, roomId, userId))?.membership === 'join';
  }
}

function requireDevice(viewer: PeekViewer): string {
  if (viewer.deviceId === undefined) throw new MatrixError('M_UNKNOWN', 'Peeks belong to a device, and this access token has none', 400);
  return viewer.deviceId;
}

function validRoomId(roomId: string): string {
  if (roomId.length > MAX_ID_LENGTH || !ROOM_ID.test(roomId)) throw invalidParam('Invalid room id');
  return roomId;
}
