import type { RequestHandler } from 'express';

/** Counts requests being handled, so shutdown can wait for them before closing the database. */
export class InFlightRequests {
  private count = 0;
  private waiters: Array<() => void> = [];

  middleware(): RequestHandler {
    return (_req, res, next) => {
      this.count++;
      res.once('close', () => {
        this.count--;
        if (this.count === 0) for (const w of this.waiters.splice(0)) w();
      });
      next();
    };
  }

  /** Resolves when no request is running, or after `timeoutMs`. */
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
