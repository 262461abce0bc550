/**
 * Counts route handlers that are still running (not responses: a long-poll whose client went away keeps
 * running), so shutdown can wait for them before closing the database.
 */
export class InFlightRequests {
  private count = 0;
  private waiters: Array<() => void> = [];

  track<T>(work: Promise<T>): Promise<T> {
    this.count++;
    const done = () => {
      this.count--;
      if (this.count === 0) for (const w of this.waiters.splice(0)) w();
    };
    work.then(done, done);
    return work;
  }

  /** Resolves when no handler is running, or after `timeoutMs`. */
  drained(timeoutMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
