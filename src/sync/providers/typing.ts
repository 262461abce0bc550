import { addEphemeral, ephemeralAllowed } from '../../edus/syncRooms.js';
import type { TypingService } from '../../edus/typing.js';
import type { Database } from '../../storage/database.js';
import type { SyncContext, SyncProvider } from '../provider.js';

// The typing topic: an m.typing ephemeral event with everyone typing now, for rooms whose typing changed.
export class TypingProvider implements SyncProvider {
  readonly topic = 'typing' as const;

  constructor(private readonly deps: { db: Database; typing: TypingService }) {}

  async latest(): Promise<number> {
    return this.deps.typing.latest();
  }

  async complete(ctx: SyncContext): Promise<void> {
    const active = this.deps.typing.activeRooms();
    if (active.length === 0) return;
    const joined = new Set(await ctx.joinedRoomIds());
    this.place(ctx, active.filter((id) => joined.has(id)));
  }

  async incremental(ctx: SyncContext, from: number): Promise<boolean> {
    const { typing } = this.deps;
    const changed = new Set(typing.changedSince(from));
    for (const id of ctx.newlyJoined) if (typing.typers(id).length) changed.add(id);
    if (changed.size === 0) return false;
    const joined = new Set(await ctx.joinedRoomIds());
    const added = this.place(ctx, [...changed].filter((id) => joined.has(id)));
    return added > 0;
  }

  private place(ctx: SyncContext, roomIds: readonly string[]): number {
    let added = 0;
    for (const roomId of roomIds) {
      if (!ephemeralAllowed(ctx, roomId, 'm.typing')) continue;
      addEphemeral(ctx, roomId, { type: 'm.typing', content: { user_ids: this.deps.typing.typers(roomId) } });
      added++;
    }
    return added;
  }
}
