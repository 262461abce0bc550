// Wakes long-polling /sync requests. It carries no data: a woken request re-reads from the database,
// so a wake-up that races a commit can never lose an event (docs/architecture.md, "Sync").
type Waiter = () => void;

export class Notifier {
  private readonly waiters = new Map<string, Set<Waiter>>();

  /** Resolves when `userId` is notified, or after `timeoutMs`; `signal` cancels early. */
  wait(userId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.waiters.get(userId);
      if (!set) {
        set = new Set();
        this.waiters.set(userId, set);
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        const s = this.waiters.get(userId);
        if (s) {
          s.delete(done);
          if (s.size === 0) this.waiters.delete(userId);
        }
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      // A parked request must not keep the process alive on shutdown; its socket does that while open.
      timer.unref?.();
      signal?.addEventListener('abort', done);
      set.add(done);
    });
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
    let n = 0;
    for (const s of this.waiters.values()) n += s.size;
    return n;
  }
}
