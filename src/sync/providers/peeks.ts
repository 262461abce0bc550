import type { Database } from '../../storage/database.js';
import { devicePeeks, maxPeekId } from '../../storage/repositories/peeks.js';
import { membershipAtStream } from '../../storage/repositories/sync.js';
import { roomAllowed } from '../filter.js';
import type { SyncContext, SyncProvider } from '../provider.js';
import type { RoomsProvider } from './rooms.js';

// The `peeks` topic (MSC2753): a position is a peek's id. A peek newer than the client's token comes down
// whole; older peeks bring their rooms' new events, through the rooms provider (one code path with joins).

export class PeeksProvider implements SyncProvider {
  readonly topic = 'peeks' as const;

  constructor(private readonly deps: { db: Database; rooms: RoomsProvider }) {}

  latest(): Promise<number> {
    return maxPeekId(this.deps.db.knex);
  }

  async complete(ctx: SyncContext, to: number): Promise<void> {
    await this.build(ctx, undefined, to);
  }

  async incremental(ctx: SyncContext, from: number, to: number): Promise<boolean> {
    return (await this.build(ctx, from, to)) > 0;
  }

  private async build(ctx: SyncContext, from: number | undefined, to: number): Promise<number> {
    if (ctx.deviceId === undefined) return 0;
    const db = this.deps.db.knex;
    const peeks = (await devicePeeks(db, ctx.userId, ctx.deviceId)).filter((p) => p.id <= to && roomAllowed(ctx.filter, p.roomId));
    if (peeks.length === 0) return 0;
    // A room the user had joined by this response's position is under `join` (joining ends the peek).
    const memberships = await Promise.all(peeks.map((p) => membershipAtStream(db, p.roomId, ctx.userId, ctx.to.timeline)));
    const shown = peeks.filter((_, i) => memberships[i]?.membership !== 'join');
    return this.deps.rooms.buildPeeks(ctx, shown.map((p) => ({ roomId: p.roomId, fresh: from === undefined || p.id > from })));
  }
}
