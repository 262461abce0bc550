import type { Database, Db } from '../../storage/database.js';
import { allAccountData, changedAccountData, maxAccountDataStreamId, roomAccountData, type AccountDataRow } from '../../storage/repositories/accountData.js';
import { matchesEventFilter, applyLimit } from '../filter.js';
import type { SyncContext, SyncProvider } from '../provider.js';
import type { BasicEvent } from '../response.js';

// The account data topic: global entries at the top level, room entries inside joined/left rooms.
export class AccountDataProvider implements SyncProvider {
  readonly topic = 'accountData' as const;

  constructor(private readonly deps: { db: Database }) {}

  /**
   * Server-managed global entries a whole sync carries even before anything was stored (Synapse: the push
   * rules, which clients such as Element X read from account data).
   */
  defaults: (userId: string) => Promise<Array<{ type: string; content: Record<string, unknown> }>> = async () => [];

  private get db(): Db {
    return this.deps.db.knex;
  }

  latest(): Promise<number> {
    return maxAccountDataStreamId(this.db);
  }

  async complete(ctx: SyncContext, to: number): Promise<void> {
    const rows = await allAccountData(this.db, ctx.userId, to);
    for (const d of await this.defaults(ctx.userId)) {
      if (!rows.some((r) => r.roomId === '' && r.type === d.type)) rows.push({ streamId: 0, roomId: '', type: d.type, content: d.content });
    }
    await this.place(ctx, rows, false);
  }

  async incremental(ctx: SyncContext, from: number, to: number): Promise<boolean> {
    const rows = from < to ? await changedAccountData(this.db, ctx.userId, from, to) : [];
    // Rooms newly joined in this range get all their room account data, as in an initial sync.
    if (ctx.newlyJoined.size) {
      const seen = new Set(rows.map((r) => `${r.roomId}\u0000${r.type}`));
      for (const r of await roomAccountData(this.db, ctx.userId, [...ctx.newlyJoined], to)) {
        if (!seen.has(`${r.roomId}\u0000${r.type}`)) rows.push(r);
      }
    }
    return this.place(ctx, rows, true);
  }

  /** Puts rows where they belong; returns whether anything was added. */
  private async place(ctx: SyncContext, rows: AccountDataRow[], createJoined: boolean): Promise<boolean> {
    const global: BasicEvent[] = [];
    const perRoom = new Map<string, BasicEvent[]>();
    const roomFilter = ctx.filter.room?.account_data;
    for (const r of rows) {
      const event = { type: r.type, content: r.content };
      if (r.roomId === '') {
        if (matchesEventFilter(event, ctx.filter.account_data)) global.push(event);
        continue;
      }
      if (roomFilter?.not_rooms?.includes(r.roomId) || (roomFilter?.rooms && !roomFilter.rooms.includes(r.roomId))) continue;
      if (!matchesEventFilter(event, roomFilter)) continue;
      let list = perRoom.get(r.roomId);
      if (!list) perRoom.set(r.roomId, (list = []));
      list.push(event);
    }
    const limitedGlobal = applyLimit(global, ctx.filter.account_data);
    ctx.response.accountData.push(...limitedGlobal);
    const roomsAdded = perRoom.size ? await this.placeRooms(ctx, perRoom, createJoined) : 0;
    return roomsAdded + limitedGlobal.length > 0;
  }

  private async placeRooms(ctx: SyncContext, perRoom: Map<string, BasicEvent[]>, createJoined: boolean): Promise<number> {
    const joined = createJoined ? new Set(await ctx.joinedRoomIds()) : undefined;
    let added = 0;
    for (const [roomId, events] of perRoom) {
      const list = applyLimit(events, ctx.filter.room?.account_data);
      const target = ctx.response.join.get(roomId) ?? (joined?.has(roomId) ? ctx.response.joinedRoom(roomId) : ctx.response.leave.get(roomId));
      if (!target) continue;
      target.account_data.events.push(...list);
      added += list.length;
    }
    return added;
  }
}
