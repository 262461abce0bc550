import type { PresenceService } from '../../edus/presence.js';
import type { Database, Db } from '../../storage/database.js';
import { changedPresence, presenceOfUsers, type PresenceRow } from '../../storage/repositories/presence.js';
import { roomMembers } from '../../storage/repositories/state.js';
import { newJoinersInRange } from '../../storage/repositories/sync.js';
import { applyLimit, matchesEventFilter } from '../filter.js';
import type { SyncContext, SyncProvider } from '../provider.js';
import type { BasicEvent } from '../response.js';

// The presence topic: m.presence of the syncing user and of the users sharing a joined room with them (as Synapse).
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
    const peers = [...new Set([ctx.userId, ...(await ctx.presencePeers())])];
    const now = this.deps.presence.now();
    // An initial sync leaves out who is offline.
    const rows = (await presenceOfUsers(this.db, peers)).filter((r) => this.deps.presence.effectiveState(r, now) !== 'offline');
    this.place(ctx, rows, now);
  }

  async incremental(ctx: SyncContext, from: number, to: number): Promise<boolean> {
    if (!this.deps.presence.enabled) return false;
    const changed = from < to ? await changedPresence(this.db, from, to) : [];
    // Users newly sharing a room (the user joined theirs, or they joined the user's): their presence as it
    // is, offline included (as Synapse), even when it did not change.
    const newcomers = new Set(await newJoinersInRange(this.db, ctx.userId, ctx.since?.timeline ?? ctx.to.timeline, ctx.to.timeline));
    for (const roomId of ctx.newlyJoined) for (const u of await roomMembers(this.db, roomId, ['join'])) newcomers.add(u);
    newcomers.delete(ctx.userId);
    if (changed.length === 0 && newcomers.size === 0) return false;
    const rows: PresenceRow[] = [];
    if (changed.length) {
      const peers = new Set(await ctx.presencePeers());
      peers.add(ctx.userId);
      rows.push(...changed.filter((r) => peers.has(r.userId)));
    }
    const now = this.deps.presence.now();
    for (const r of rows) newcomers.delete(r.userId);
    const events = this.events(ctx, rows, now);
    if (newcomers.size) {
      const current = new Map((await presenceOfUsers(this.db, [...newcomers])).map((r) => [r.userId, r]));
      for (const u of newcomers) {
        const row = current.get(u);
        const event = { type: 'm.presence', sender: u, content: { ...this.deps.presence.content(row, now) } };
        if (matchesEventFilter(event, ctx.filter.presence)) events.push(event);
      }
    }
    const limited = applyLimit(events, ctx.filter.presence);
    ctx.response.presence.push(...limited);
    return limited.length > 0;
  }

  private place(ctx: SyncContext, rows: readonly PresenceRow[], now: number): number {
    const limited = applyLimit(this.events(ctx, rows, now), ctx.filter.presence);
    ctx.response.presence.push(...limited);
    return limited.length;
  }

  private events(ctx: SyncContext, rows: readonly PresenceRow[], now: number): BasicEvent[] {
    const events: BasicEvent[] = [];
    for (const r of rows) {
      const event = { type: 'm.presence', sender: r.userId, content: { ...this.deps.presence.content(r, now) } };
      if (matchesEventFilter(event, ctx.filter.presence)) events.push(event);
    }
    return events;
  }
}
