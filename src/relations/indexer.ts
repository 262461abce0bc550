import type { Logger } from 'pino';
import type { WriteResult } from '../rooms/roomWriter.js';
import type { Database } from '../storage/database.js';
import { toStoredEvent, type EventRow, type StoredEvent } from '../storage/repositories/events.js';
import { advanceIndexPosition, deleteRelations, indexPosition, insertRelations } from '../storage/repositories/relations.js';
import { deleteSearchEntries, insertSearchEntries, type SearchEngine } from '../storage/repositories/search.js';
import { relationRow, searchEntry } from './extract.js';

const BACKFILL_PAGE = 500;
/** The backfill re-reads this many positions below the recorded one (inserts are idempotent). */
const BACKFILL_OVERLAP = 1_000;

/**
 * Keeps `event_relations` and `event_search` in step with `events`.
 *
 * Committed writes arrive through `rooms.onCommitted` and are indexed in commit order on one queue, each
 * batch in its own transaction that also advances `event_index_position`. A crash between the event
 * commit and that transaction loses nothing: `start()` re-indexes every event above the recorded
 * position (with some overlap) before anything else on the queue. Readers call `idle()` first, so a
 * client that reads right after its send sees its own relation.
 */
export class EventIndexer {
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: { db: Database; logger: Logger },
    private readonly engine: SearchEngine,
  ) {}

  /** Queues the startup backfill (events committed but never indexed, e.g. after a crash or an upgrade). */
  start(): void {
    this.enqueue(() => this.backfill());
  }

  onCommitted(result: WriteResult): void {
    if (!result.events.length && !result.redactedTargets.length) return;
    this.enqueue(() => this.index(result.events, result.redactedTargets));
  }

  /** Resolves once everything queued so far is indexed. */
  idle(): Promise<void> {
    return this.tail;
  }

  private enqueue(work: () => Promise<void>): void {
    this.tail = this.tail.then(work).catch((err: unknown) => this.deps.logger.error({ err }, 'event indexing failed'));
  }

  private async index(events: readonly StoredEvent[], redactedTargets: readonly string[]): Promise<void> {
    const relations = events.map(relationRow).filter((r) => r !== undefined);
    const entries = events.map(searchEntry).filter((e) => e !== undefined);
    const top = events.reduce((m, e) => Math.max(m, e.streamOrdering), 0);
    const engine = this.engine;
    await this.deps.db.knex.transaction(async (trx) => {
      if (relations.length) await insertRelations(trx, relations);
      if (entries.length) await insertSearchEntries(trx, engine, entries);
      // A redacted event loses its relation and its text (its content is gone).
      if (redactedTargets.length) {
        await deleteRelations(trx, redactedTargets);
        await deleteSearchEntries(trx, engine, redactedTargets);
      }
      if (top > 0) await advanceIndexPosition(trx, top);
    });
  }

  private async backfill(): Promise<void> {
    const db = this.deps.db.knex;
    let from = Math.max(0, (await indexPosition(db)) - BACKFILL_OVERLAP);
    let total = 0;
    for (;;) {
      const rows: EventRow[] = await db('events').where('stream_ordering', '>', from).orderBy('stream_ordering', 'asc').limit(BACKFILL_PAGE);
      if (!rows.length) break;
      const events = rows.map(toStoredEvent);
      const redacted: string[] = [];
      for (const ev of events) {
        if (ev.pdu.type !== 'm.room.redaction' || ev.rejected) continue;
        // Top-level `redacts` before room version 11, inside content from 11 on.
        const target = ev.pdu.redacts ?? ev.pdu.content?.redacts;
        if (typeof target === 'string') redacted.push(target);
      }
      await this.index(events, redacted);
      total += events.length;
      from = events[events.length - 1]!.streamOrdering;
    }
    if (total) this.deps.logger.info({ events: total }, 'indexed relations and search text of unindexed events');
  }
}
