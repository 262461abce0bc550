import { MatrixError, forbidden, notFound } from '../errors.js';
import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { maxReceiptStreamId, putReceipt } from '../storage/repositories/receipts.js';
import { currentMembership, roomMembers } from '../storage/repositories/state.js';
import type { AccountDataService } from '../sync/accountDataService.js';

// Spec: Client-Server API, "Receipts" and "Fully read markers".

export const RECEIPT_TYPES = ['m.read', 'm.read.private'] as const;
export type ReceiptType = (typeof RECEIPT_TYPES)[number];

/** A public receipt of a local user was stored (for federation). */
export type LocalReceiptListener = (receipt: { roomId: string; userId: string; receiptType: string; eventId: string; threadId: string | undefined; ts: number }) => void;

export interface ReceiptDeps extends ServiceDeps {
  rooms: RoomService;
  accountData: AccountDataService;
}

export class ReceiptService {
  /** Told of each public receipt a local user stored. */
  readonly onLocalReceipt: LocalReceiptListener[] = [];

  constructor(private readonly deps: ReceiptDeps) {}

  latest(): Promise<number> {
    return maxReceiptStreamId(this.deps.db.knex);
  }

  /** POST /rooms/{roomId}/receipt/{receiptType}/{eventId}. */
  async send(userId: string, roomId: string, receiptType: string, eventId: string, threadId: unknown): Promise<void> {
    if (threadId !== undefined) {
      if (typeof threadId !== 'string' || threadId === '') throw new MatrixError('M_INVALID_PARAM', 'thread_id field must be a non-empty string');
      if (receiptType === 'm.fully_read') throw new MatrixError('M_INVALID_PARAM', 'thread_id is not allowed for m.fully_read');
      if (threadId !== 'main' && !threadId.startsWith('$')) {
        throw new MatrixError('M_INVALID_PARAM', 'thread_id must be "main" or the event ID of a thread root');
      }
    }
    if (receiptType === 'm.fully_read') {
      await this.setFullyRead(userId, roomId, eventId);
      return;
    }
    if (!(RECEIPT_TYPES as readonly string[]).includes(receiptType)) {
      throw new MatrixError('M_INVALID_PARAM', `Unknown receipt type ${receiptType}`);
    }
    await this.assertJoined(userId, roomId);
    const eventStream = await this.eventStream(roomId, eventId);
    const ts = this.deps.clock.now();
    const position = await this.deps.db.write((trx) =>
      putReceipt(trx, { roomId, userId, receiptType, threadId: threadId as string | undefined, eventId, eventStream, ts }),
    );
    if (position === undefined) return;
    if (receiptType !== 'm.read.private') {
      for (const listener of this.onLocalReceipt) {
        try {
          listener({ roomId, userId, receiptType, eventId, threadId: threadId as string | undefined, ts });
        } catch (err) {
          this.deps.logger.warn({ err, roomId }, 'receipt listener failed');
        }
      }
    }
    // A private receipt is only ever news to its owner.
    const wake = receiptType === 'm.read.private' ? [userId] : await roomMembers(this.deps.db.knex, roomId, ['join']);
    this.deps.notifier.notifyUsers(wake);
    if (receiptType !== 'm.read.private') this.deps.notifier.notifyRooms([roomId]);
  }

  /**
   * Inbound m.receipt from another server: stored for a user joined to the room. An event not known here
   * (yet) is stored at position 0, so any later receipt of the user replaces it.
   */
  async receiveRemote(r: { roomId: string; userId: string; receiptType: string; eventId: string; threadId: string | undefined; ts: number }): Promise<void> {
    if (r.receiptType === 'm.read.private' || !(RECEIPT_TYPES as readonly string[]).includes(r.receiptType)) return;
    const m = await currentMembership(this.deps.db.knex, r.roomId, r.userId);
    if (m?.membership !== 'join') return;
    const ev = await this.deps.rooms.events.get(this.deps.db.knex, r.eventId);
    const eventStream = ev && ev.pdu.room_id === r.roomId && !ev.rejected ? ev.streamOrdering : 0;
    if (ev && ev.pdu.room_id !== r.roomId) return;
    const position = await this.deps.db.write((trx) => putReceipt(trx, { ...r, eventStream }));
    if (position === undefined) return;
    this.deps.notifier.notifyUsers(await roomMembers(this.deps.db.knex, r.roomId, ['join']));
    this.deps.notifier.notifyRooms([r.roomId]);
  }

  /** POST /rooms/{roomId}/read_markers. */
  async setReadMarkers(
    userId: string,
    roomId: string,
    markers: { fullyRead?: string | undefined; read?: string | undefined; readPrivate?: string | undefined },
  ): Promise<void> {
    await this.assertJoined(userId, roomId);
    // Check every event first so a bad one changes nothing.
    for (const id of [markers.fullyRead, markers.read, markers.readPrivate]) if (id !== undefined) await this.eventStream(roomId, id);
    if (markers.read !== undefined) await this.send(userId, roomId, 'm.read', markers.read, undefined);
    if (markers.readPrivate !== undefined) await this.send(userId, roomId, 'm.read.private', markers.readPrivate, undefined);
    if (markers.fullyRead !== undefined) await this.setFullyRead(userId, roomId, markers.fullyRead);
  }

  /** The read marker is room account data `m.fully_read` (spec: "Fully read markers"). */
  private async setFullyRead(userId: string, roomId: string, eventId: string): Promise<void> {
    await this.assertJoined(userId, roomId);
    const position = await this.eventStream(roomId, eventId);
    // The marker only moves forwards (as in Synapse): an older event leaves it where it is.
    const current = await this.deps.accountData.get(userId, roomId, 'm.fully_read');
    if (typeof current?.event_id === 'string') {
      if (current.event_id === eventId) return;
      const at = await this.deps.rooms.events.get(this.deps.db.knex, current.event_id);
      if (at && at.pdu.room_id === roomId && at.streamOrdering > position) return;
    }
    await this.deps.accountData.put(userId, roomId, 'm.fully_read', { event_id: eventId });
  }

  private async assertJoined(userId: string, roomId: string): Promise<void> {
    const m = await currentMembership(this.deps.db.knex, roomId, userId);
    if (m?.membership !== 'join') throw forbidden(`User ${userId} not in room ${roomId}`);
  }

  /** The event's stream position; 404 unless it is an accepted event of this room. */
  private async eventStream(roomId: string, eventId: string): Promise<number> {
    const ev = await this.deps.rooms.events.get(this.deps.db.knex, eventId);
    if (!ev || ev.pdu.room_id !== roomId || ev.rejected) throw notFound('Event not found');
    return ev.streamOrdering;
  }
}
