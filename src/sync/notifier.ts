// Wakes long-polling /sync requests. It carries no data: a woken request re-reads from the database,
// so a wake-up that races a commit can never lose an event (docs/architecture.md, "Sync").
type Waiter = () => void;

/** How a wait ended, for the metrics (src/metrics). */
export interface NotifierMetrics {
  waitEnded(outcome: 'woken' | 'timeout'): void;
}

export class Notifier {
  private readonly waiters = new Map<string, Set<Waiter>>();
  metrics: NotifierMetrics | undefined;

  /**
   * Resolves when `userId` is notified (or a new event lands in one of `rooms`, for a peek), or after
   * `timeoutMs`; `signal` cancels early.
   */
  wait(userId: string, timeoutMs: number, signal?: AbortSignal, rooms: readonly string[] = []): Promise<void> {
    if (this.closed) return Promise.resolve();
    const keys = [userId, ...rooms.map(roomKey)];
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        for (const key of keys) {
          const s = this.waiters.get(key);
          if (!s) continue;
          s.delete(woken);
          if (s.size === 0) this.waiters.delete(key);
        }
        resolve();
      };
      // A wait cancelled (an answer found without waiting, a client gone) is not a long-poll outcome.
      const woken = () => {
        this.metrics?.waitEnded('woken');
        done();
      };
      const timer = setTimeout(() => {
        this.metrics?.waitEnded('timeout');
        done();
      }, Math.max(0, timeoutMs));
      // A parked request must not keep the process alive on shutdown; its socket does that while open.
      timer.unref?.();
      signal?.addEventListener('abort', done);
      for (const key of keys) {
        let set = this.waiters.get(key);
        if (!set) this.waiters.set(key, (set = new Set()));
        set.add(woken);
      }
    });
  }

  /** New events in these rooms: wakes the requests peeking into them (members are woken by user). */
  notifyRooms(roomIds: Iterable<string>): void {
    const keys: string[] = [];
    for (const roomId of roomIds) keys.push(roomKey(roomId));
    this.notifyUsers(keys);
  }

  notifyUsers(userIds: Iterable<string>): void {
    for (const userId of userIds) {
      const set = this.waiters.get(userId);
      if (!set) continue;
      for (const wake of [...set]) wake();
    }
  }

  private closed = false;

  /** After shutdown began, waits end at once so long-polls answer with what they have. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Shutdown: releases every waiting request and every later one. */
  wakeAll(): void {
    this.closed = true;
    for (const set of [...this.waiters.values()]) for (const wake of [...set]) wake();
  }

  waitingCount(): number {
    const all = new Set<Waiter>();
    for (const s of this.waiters.values()) for (const w of s) all.add(w);
    return all.size;
  }
}

/** Room keys live beside user ids in one map; the NUL prefix keeps them apart from any user id. */
function roomKey(roomId: string): string {
  return `\u0000room\u0000${roomId}`;
}
