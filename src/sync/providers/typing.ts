import { addEphemeral, ephemeralAllowed } from '../../edus/syncRooms.js';
import type { TypingService } from '../../edus/typing.js';
import type { Database } from '../../storage/database.js';
import type { SyncContext, SyncProvider } from '../provider.js';

// The typing topic: an m.typing ephemeral event with everyone typing now, for rooms whose typing changed
// (since the token; on a full sync, ever).
export class TypingProvider implements SyncProvider {
  readonly topic = 'typing' as const;

  constructor(private readonly deps: { db: Database; typing: TypingService }) {}

  async latest(): Promise<number> {
    return this.deps.typing.latest();
  }

  async complete(ctx: SyncContext): Promise<void> {
    // As Synapse: every room whose typing ever changed, even to nobody, so a client starting from a full
    // sync learns that a typist it may have shown before has stopped.
    const touched = this.deps.typing.touchedRooms();
    if (touched.length === 0) return;
    const joined = new Set(await ctx.joinedRoomIds());
    this.place(ctx, touched.filter((id) => joined.has(id)));
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
