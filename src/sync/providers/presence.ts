import type { PresenceService } from '../../edus/presence.js';
import type { Database, Db } from '../../storage/database.js';
import { changedPresence, presenceOfUsers, type PresenceRow } from '../../storage/repositories/presence.js';
import { roomMembers, usersSharingRooms } from '../../storage/repositories/state.js';
import { applyLimit, matchesEventFilter } from '../filter.js';
import type { SyncContext, SyncProvider } from '../provider.js';
import type { BasicEvent } from '../response.js';

// The presence topic: m.presence of the users sharing a joined room with the syncing user (not their own).
export class PresenceProvider implements SyncProvider {
  readonly topic = 'presence' as const;

  constructor(private readonly deps: { db: Database; presence: PresenceService }) {}

  private get db(): Db {
    return this.deps.db.knex;
  }

  latest(): Promise<number> {
    return this.deps.presence.latest();
  }

  async complete(ctx: SyncContext): Promise<void> {
    if (!this.deps.presence.enabled) return;
    const peers = (await usersSharingRooms(this.db, ctx.userId)).filter((u) => u !== ctx.userId);
    if (peers.length === 0) return;
    const now = this.deps.presence.now();
    // An initial sync leaves out who is offline.
    const rows = (await presenceOfUsers(this.db, peers)).filter((r) => this.deps.presence.effectiveState(r, now) !== 'offline');
    this.place(ctx, rows, now);
  }

  async incremental(ctx: SyncContext, from: number, to: number): Promise<boolean> {
    if (!this.deps.presence.enabled) return false;
    const changed = from < to ? (await changedPresence(this.db, from, to)).filter((r) => r.userId !== ctx.userId) : [];
    if (changed.length === 0 && ctx.newlyJoined.size === 0) return false;
    const rows: PresenceRow[] = [];
    if (changed.length) {
      const peers = new Set(await usersSharingRooms(this.db, ctx.userId));
      rows.push(...changed.filter((r) => peers.has(r.userId)));
    }
    const now = this.deps.presence.now();
    if (ctx.newlyJoined.size) {
      // The members of a newly joined room: their presence as an initial sync would show it.
      const seen = new Set(rows.map((r) => r.userId));
      const members = new Set<string>();
      for (const roomId of ctx.newlyJoined) for (const u of await roomMembers(this.db, roomId, ['join'])) if (u !== ctx.userId && !seen.has(u)) members.add(u);
      if (members.size) {
        const current = await presenceOfUsers(this.db, [...members]);
        rows.push(...current.filter((r) => this.deps.presence.effectiveState(r, now) !== 'offline'));
      }
    }
    return this.place(ctx, rows, now) > 0;
  }

  private place(ctx: SyncContext, rows: readonly PresenceRow[], now: number): number {
    const events: BasicEvent[] = [];
    for (const r of rows) {
      const event = { type: 'm.presence', sender: r.userId, content: { ...this.deps.presence.content(r, now) } };
      if (matchesEventFilter(event, ctx.filter.presence)) events.push(event);
    }
    const limited = applyLimit(events, ctx.filter.presence);
    ctx.response.presence.push(...limited);
    return limited.length;
  }
}
