import { addEphemeral, ephemeralAllowed } from '../../edus/syncRooms.js';
import type { ReceiptService } from '../../edus/receipts.js';
import type { Database, Db } from '../../storage/database.js';
import { changedReceipts, receiptsInRooms, type ReceiptRow } from '../../storage/repositories/receipts.js';
import type { SyncContext, SyncProvider } from '../provider.js';
import { dict } from '../../util/dict.js';

// The receipts topic: one m.receipt ephemeral event per joined room. A private receipt reaches its owner only.
export class ReceiptsProvider implements SyncProvider {
  readonly topic = 'receipts' as const;

  constructor(private readonly deps: { db: Database; receipts: ReceiptService }) {}

  private get db(): Db {
    return this.deps.db.knex;
  }

  latest(): Promise<number> {
    return this.deps.receipts.latest();
  }

  async complete(ctx: SyncContext, to: number): Promise<void> {
    const rooms = await ctx.joinedRoomIds();
    if (rooms.length === 0) return;
    this.place(ctx, await receiptsInRooms(this.db, rooms, to));
  }

  async incremental(ctx: SyncContext, from: number, to: number): Promise<boolean> {
    const changed = from < to ? await changedReceipts(this.db, from, to) : [];
    if (changed.length === 0 && ctx.newlyJoined.size === 0) return false;
    const joined = new Set(await ctx.joinedRoomIds());
    const rows = changed.filter((r) => joined.has(r.roomId) && !ctx.newlyJoined.has(r.roomId));
    // Rooms newly joined in this range get all their receipts, as in an initial sync.
    const fresh = [...ctx.newlyJoined].filter((id) => joined.has(id));
    if (fresh.length) rows.push(...(await receiptsInRooms(this.db, fresh, to)));
    const added = this.place(ctx, rows);
    return added > 0;
  }

  /** Adds one m.receipt event per room; returns how many were added. */
  private place(ctx: SyncContext, rows: readonly ReceiptRow[]): number {
    let added = 0;
    for (const [roomId, content] of receiptContents(rows, ctx.userId)) {
      if (!ephemeralAllowed(ctx, roomId, 'm.receipt')) continue;
      addEphemeral(ctx, roomId, { type: 'm.receipt', content });
      added++;
    }
    return added;
  }
}

export type ReceiptContent = Record<string, Record<string, Record<string, { ts: number; thread_id?: string }>>>;

/** The m.receipt content per room for `viewer`: a private receipt reaches its owner only. */
export function receiptContents(rows: readonly ReceiptRow[], viewer: string): Map<string, ReceiptContent> {
  const perRoom = new Map<string, ReceiptContent>();
  for (const r of rows) {
    if (r.receiptType === 'm.read.private' && r.userId !== viewer) continue;
    let content = perRoom.get(r.roomId);
    if (!content) perRoom.set(r.roomId, (content = dict()));
    const byType = (content[r.eventId] ??= dict());
    const byUser = (byType[r.receiptType] ??= dict());
    // A user may hold several receipts of one type on one event (threads); the newest row wins here.
    byUser[r.userId] = { ts: r.ts, ...(r.threadId !== undefined ? { thread_id: r.threadId } : {}) };
  }
  return perRoom;
}
