import type { Db } from '../../storage/database.js';
import { latestOfTypes, latestOfTypesInRange } from '../../storage/repositories/slidingRooms.js';

// A room's bump stamp is the stream position of its newest event of a type that should move it up the room
// list (Synapse's default bump types). Kept per room in memory and brought forward from the event stream,
// so a request reads only the stream since the last one; any process can rebuild it from the database.

export const BUMP_EVENT_TYPES = [
  'm.room.create',
  'm.room.message',
  'm.room.encrypted',
  'm.sticker',
  'm.call.invite',
  'm.poll.start',
  'org.matrix.msc3381.poll.start',
  'm.beacon_info',
  'org.matrix.msc3672.beacon_info',
];

/** Rooms remembered at most (each a string and a number); the least recently loaded go first. */
const MAX_ROOMS = 200_000;

export class BumpStamps {
  private readonly stamps = new Map<string, number>();
  /** Every remembered stamp includes the stream up to here. */
  private caughtUpTo = -1;

  constructor(private readonly db: () => Db) {}

  /** Bump stamps as of stream position `upTo` (rooms without a bump event are left out). */
  async at(roomIds: readonly string[], upTo: number): Promise<Map<string, number>> {
    await this.catchUp(upTo);
    const out = new Map<string, number>();
    const missing: string[] = [];
    for (const id of roomIds) {
      const s = this.stamps.get(id);
      // A stamp past `upTo` (another request moved the cache on) is read exactly.
      if (s === undefined || s > upTo || upTo > this.caughtUpTo) missing.push(id);
      else out.set(id, s);
    }
    if (missing.length) {
      const loaded = await latestOfTypes(this.db(), missing, BUMP_EVENT_TYPES, upTo);
      for (const id of missing) {
        const s = loaded.get(id);
        if (s !== undefined) out.set(id, s);
        // Only stamps read at the cache's own position can be remembered.
        if (upTo === this.caughtUpTo) this.remember(id, s ?? 0);
      }
    }
    for (const [id, s] of out) if (s <= 0) out.delete(id);
    return out;
  }

  /** Catch-ups run one at a time, so the remembered stamps are always complete up to `caughtUpTo`. */
  private catchUp(upTo: number): Promise<void> {
    const run = this.chain.then(async () => {
      if (this.caughtUpTo < 0) {
        this.caughtUpTo = upTo;
        return;
      }
      if (upTo <= this.caughtUpTo) return;
      const changed = await latestOfTypesInRange(this.db(), BUMP_EVENT_TYPES, this.caughtUpTo, upTo);
      for (const [id, s] of changed) if (this.stamps.has(id)) this.stamps.set(id, Math.max(this.stamps.get(id)!, s));
      this.caughtUpTo = upTo;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private chain: Promise<void> = Promise.resolve();

  private remember(roomId: string, stamp: number): void {
    if (this.stamps.size >= MAX_ROOMS) {
      const oldest = this.stamps.keys().next().value;
      if (oldest !== undefined) this.stamps.delete(oldest);
    }
    this.stamps.set(roomId, stamp);
  }
}
