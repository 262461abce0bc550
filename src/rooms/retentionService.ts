// Message retention: on each purge job's schedule, events older than their room's max_lifetime are purged
// (rows, content and derived rows), as Synapse's purge_history_for_rooms_in_range. Progress is persisted per
// room (retention_purges) so a purge cut short by a crash resumes at start-up.
import type { Logger } from 'pino';
import { parseDuration, type HomeserverConfig } from '../config/schema.js';
import type { Clock } from '../serviceDeps.js';
import type { Database } from '../storage/database.js';
import { deleteDerivedEventRows } from '../storage/repositories/eventDerived.js';
import * as repo from '../storage/repositories/retention.js';
import type { Pdu } from '../types/pdu.js';
import { redactPdu } from './eventFormat.js';
import { effectiveMaxLifetime, jobHandlesRoom, policyFromContent, type PurgeJob, type RetentionSettings } from './retentionPolicy.js';
import type { RoomService } from './roomService.js';

/** Events deleted per transaction: each batch is atomic, so a crash loses at most the batch in flight (rolled back). */
const BATCH = 200;
const DEFAULT_JOB_INTERVAL = '1d';

export function retentionSettings(config: HomeserverConfig): RetentionSettings {
  const r = config.retention;
  const ms = (v: number | string | null | undefined) => (v === undefined || v === null ? null : parseDuration(v));
  const jobs = r.purge_jobs.length ? r.purge_jobs : [{ interval: DEFAULT_JOB_INTERVAL }];
  return {
    enabled: r.enabled,
    defaultPolicy: { minLifetime: ms(r.default_policy?.min_lifetime), maxLifetime: ms(r.default_policy?.max_lifetime) },
    allowedLifetimeMin: ms(r.allowed_lifetime_min),
    allowedLifetimeMax: ms(r.allowed_lifetime_max),
    purgeJobs: jobs.map((j) => ({
      intervalMs: parseDuration(j.interval),
      shortestMaxLifetime: ms('shortest_max_lifetime' in j ? j.shortest_max_lifetime : null),
      longestMaxLifetime: ms('longest_max_lifetime' in j ? j.longest_max_lifetime : null),
    })),
  };
}

export interface RetentionDeps {
  config: HomeserverConfig;
  db: Database;
  clock: Clock;
  logger: Logger;
  rooms: Pick<RoomService, 'write' | 'roomVersion' | 'events'>;
}

export class RetentionService {
  readonly settings: RetentionSettings;
  private readonly timers: NodeJS.Timeout[] = [];
  /** One purge job or resume at a time: a job that comes due while another runs waits for it. */
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Jobs queued or running: a job that comes due again meanwhile is not queued twice. */
  private readonly pending = new Set<PurgeJob>();

  constructor(private readonly deps: RetentionDeps) {
    this.settings = retentionSettings(deps.config);
  }

  /** Resumes purges a crash cut short, then (when enabled) schedules the purge jobs. */
  start(): void {
    void this.enqueue(() => this.resumeUnfinished());
    if (!this.settings.enabled) return;
    for (const job of this.settings.purgeJobs) {
      const timer = setInterval(() => {
        if (this.pending.has(job)) return;
        this.pending.add(job);
        void this.enqueue(() => this.runJob(job).finally(() => this.pending.delete(job)));
      }, job.intervalMs);
      timer.unref();
      this.timers.push(timer);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
    await this.chain;
  }

  /** The room's effective max_lifetime in ms (policy, default, allowed range); null when kept forever. */
  async maxLifetimeOf(roomId: string): Promise<number | null> {
    if (!this.settings.enabled) return null;
    const content = await repo.retentionContentOf(this.deps.db.knex, roomId);
    return effectiveMaxLifetime(content ? policyFromContent(content) : undefined, this.settings);
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    // Errors are logged, never thrown: the next run tries again.
    this.chain = this.chain.then(async () => {
      if (this.stopped) return;
      try {
        await task();
      } catch (err) {
        this.deps.logger.error({ err }, 'retention purge failed');
      }
    });
    return this.chain;
  }

  private async resumeUnfinished(): Promise<void> {
    for (const p of await repo.unfinishedPurges(this.deps.db.knex)) {
      if (this.stopped) return;
      this.deps.logger.info({ roomId: p.roomId }, 'retention: resuming an interrupted purge');
      await this.purgeRoom(p.roomId, p.cutoffTs);
    }
  }

  /** One run of a purge job: every room whose max_lifetime falls in the job's range. */
  async runJob(job: PurgeJob): Promise<void> {
    const rooms = await repo.roomsWithRetention(this.deps.db.knex);
    for (const [roomId, content] of rooms) {
      if (this.stopped) return;
      const policy = content ? policyFromContent(content) : undefined;
      if (!jobHandlesRoom(job, policy, this.settings)) continue;
      const maxLifetime = effectiveMaxLifetime(policy, this.settings);
      if (maxLifetime === null) continue;
      await this.purgeRoom(roomId, this.deps.clock.now() - maxLifetime);
    }
  }

  /** Purges the room's events sent before `cutoffTs`, batch by batch; returns how many were removed. */
  async purgeRoom(roomId: string, cutoffTs: number): Promise<number> {
    const { db, rooms, logger, clock } = this.deps;
    const pending = (await repo.purgeCandidates(db.knex, roomId, cutoffTs, 1)).length > 0 || (await repo.oldExtremities(db.knex, roomId, cutoffTs)).length > 0;
    if (!pending) {
      await repo.finishPurge(db.knex, roomId);
      return 0;
    }
    await repo.recordPurge(db.knex, roomId, cutoffTs, clock.now());
    const version = await rooms.roomVersion(db.knex, roomId);
    let total = 0;
    for (;;) {
      if (this.stopped) return total; // the progress row stays: the next start finishes the purge
      const changed: string[] = [];
      const removed = await rooms.write(roomId, async (ctx, trx) => {
        await ctx.willWrite();
        const ids = await repo.purgeCandidates(trx, roomId, cutoffTs, BATCH);
        if (!ids.length) return 0;
        // A kept event (state, extremity) redacted by a purged redaction keeps only its redacted form.
        for (const kept of await repo.keptEventsRedactedBy(trx, ids)) {
          await repo.replaceEventJson(trx, kept.eventId, JSON.stringify(redactPdu(JSON.parse(kept.json) as Pdu, version)));
          changed.push(kept.eventId);
        }
        await deleteDerivedEventRows(trx, ids);
        await repo.deleteEventRows(trx, ids);
        changed.push(...ids);
        return ids.length;
      });
      for (const id of changed) rooms.events.invalidate(id);
      total += removed;
      if (removed < BATCH) break;
    }
    // The newest events stay as forward extremities (new events point at them), with only their redacted form.
    const extremities: string[] = [];
    await rooms.write(roomId, async (ctx, trx) => {
      await ctx.willWrite();
      for (const ev of await repo.oldExtremities(trx, roomId, cutoffTs)) {
        const pruned = JSON.stringify(redactPdu(JSON.parse(ev.json) as Pdu, version));
        if (pruned === ev.json) continue;
        await repo.replaceEventJson(trx, ev.eventId, pruned);
        extremities.push(ev.eventId);
      }
      await deleteDerivedEventRows(trx, extremities);
    });
    for (const id of extremities) rooms.events.invalidate(id);
    await repo.finishPurge(db.knex, roomId);
    if (total > 0) logger.info({ roomId, count: total }, 'retention: purged old events');
    return total;
  }
}
