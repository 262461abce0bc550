// Self-destructing messages (MSC2228, Synapse's `enable_ephemeral_messages`): a message whose content carries
// `org.matrix.self_destruct_after` is kept, once that time has passed, only in its redacted form, as if its
// sender had redacted it then (no redaction event is sent: every server that holds it does the same).
import type { Logger } from 'pino';
import type { Clock } from '../serviceDeps.js';
import type { Database } from '../storage/database.js';
import { deleteExpiries, dueExpiries, nextExpiryTs, SELF_DESTRUCT_KEY } from '../storage/repositories/eventExpiry.js';
import { pruneStoredEvents } from './eventPurge.js';
import type { WriteResult } from './roomWriter.js';
import type { RoomService } from './roomService.js';

/** setTimeout cannot wait longer than ~24.8 days; waking hourly also catches rows another process wrote. */
const MAX_SLEEP_MS = 60 * 60_000;
const BATCH = 200;

export interface SelfDestructDeps {
  db: Database;
  clock: Clock;
  logger: Logger;
  rooms: RoomService;
  enabled: boolean;
}

export class SelfDestructingMessages {
  private timer: NodeJS.Timeout | undefined;
  private wakeAt = Infinity;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly deps: SelfDestructDeps) {}

  start(): void {
    if (!this.deps.enabled) return;
    // A new expiring message may be due before the time the timer is set for.
    this.deps.rooms.onCommitted((result: WriteResult) => {
      for (const e of result.events) {
        const content = e.pdu.content as Record<string, unknown> | undefined;
        const at = content && Object.prototype.hasOwnProperty.call(content, SELF_DESTRUCT_KEY) ? content[SELF_DESTRUCT_KEY] : undefined;
        if (typeof at === 'number' && Number.isFinite(at)) this.schedule(at);
      }
    });
    this.schedule(this.deps.clock.now());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Resolves when the sweeps started so far have finished (tests). */
  idle(): Promise<void> {
    return this.running;
  }

  private schedule(at: number): void {
    if (this.stopped || at >= this.wakeAt) return;
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.min(Math.max(0, at - this.deps.clock.now()), MAX_SLEEP_MS);
    this.wakeAt = this.deps.clock.now() + delay;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.wakeAt = Infinity;
      this.running = this.running.then(() => this.sweep()).catch((err) => this.deps.logger.error({ err }, 'self-destructing messages: sweep failed'));
    }, delay);
    this.timer.unref();
  }

  private async sweep(): Promise<void> {
    const db = this.deps.db.knex;
    for (;;) {
      if (this.stopped) return;
      const due = await dueExpiries(db, this.deps.clock.now(), BATCH);
      if (!due.length) break;
      const byRoom = new Map<string, string[]>();
      for (const row of due) byRoom.set(row.roomId, [...(byRoom.get(row.roomId) ?? []), row.eventId]);
      for (const [roomId, ids] of byRoom) {
        await pruneStoredEvents(this.deps.rooms, this.deps.db, roomId, ids);
        await deleteExpiries(db, ids);
      }
      this.deps.logger.info({ events: due.length }, 'self-destructing messages pruned');
    }
    const next = await nextExpiryTs(db);
    this.schedule(next ?? this.deps.clock.now() + MAX_SLEEP_MS);
  }
}
