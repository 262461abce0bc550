import type { Db } from '../storage/database.js';
import { getEvents, type StoredEvent } from '../storage/repositories/events.js';
import { LruCache } from '../util/lru.js';

/** Reads events by id through a bounded cache; parsed PDUs are reused across requests. */
export class EventStore {
  private readonly cache = new LruCache<string, StoredEvent>(20_000);

  async getMany(db: Db, eventIds: readonly string[]): Promise<Map<string, StoredEvent>> {
    const out = new Map<string, StoredEvent>();
    const missing: string[] = [];
    for (const id of eventIds) {
      const hit = this.cache.get(id);
      if (hit) out.set(id, hit);
      else missing.push(id);
    }
    if (missing.length) {
      const loaded = await getEvents(db, missing);
      for (const [id, ev] of loaded) {
        out.set(id, ev);
        this.cache.set(id, ev);
      }
    }
    return out;
  }

  async get(db: Db, eventId: string): Promise<StoredEvent | undefined> {
    return (await this.getMany(db, [eventId])).get(eventId);
  }

  /** Called after commit for rows whose mutable columns (redacted_by) changed. */
  invalidate(eventId: string): void {
    this.cache.delete(eventId);
  }

  /** Called after commit so the writer's freshly inserted events are served without a read. */
  remember(event: StoredEvent): void {
    this.cache.set(event.eventId, event);
  }
}
