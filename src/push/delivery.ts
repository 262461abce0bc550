import type { Logger } from 'pino';
import { outboundAgents, sendOutbound, type OutboundAgents } from '../net/outboundHttp.js';
import type { OutboundPolicy } from '../net/outboundPolicy.js';

// Delivery to push gateways (spec: Push Gateway API, POST /_matrix/push/v1/notify). One queue per pusher:
// one request in flight, in order, exponential backoff on failure, bounded length, timers cleared on close.
// The queue lives in memory: a restart loses what was not yet delivered (push is best effort).

export interface DeliveryOptions {
  /** First retry delay; doubles per failed attempt. */
  retryBaseMs: number;
  maxBackoffMs: number;
  /** Attempts per notification before it is dropped and the next one is tried. */
  maxAttempts: number;
  /** Notifications waiting per pusher; the oldest is dropped past this. */
  maxQueuePerPusher: number;
  /** Pushers with pending work; new work for further pushers is dropped (logged). */
  maxPushers: number;
  requestTimeoutMs: number;
  /** A gateway's answer is `{rejected: [...]}`; anything longer is a failed delivery. */
  maxResponseBytes: number;
}

export const DEFAULT_DELIVERY_OPTIONS: DeliveryOptions = {
  retryBaseMs: 1_000,
  maxBackoffMs: 10 * 60_000,
  maxAttempts: 10,
  maxQueuePerPusher: 100,
  maxPushers: 10_000,
  requestTimeoutMs: 15_000,
  maxResponseBytes: 64 * 1024,
};

export interface PushTarget {
  userId: string;
  appId: string;
  pushkey: string;
  url: string;
}

interface Queue {
  target: PushTarget;
  items: unknown[];
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  inFlight: AbortController | undefined;
}

export interface DeliveryDeps {
  logger: Logger;
  /** The gateway answered that this pushkey is no longer valid: the pusher must go (spec: `rejected`). */
  onRejected(target: PushTarget): Promise<void>;
  /** ip_range_blacklist / ip_range_whitelist: a gateway at a refused address is unreachable. */
  outbound: OutboundPolicy;
}

const keyOf = (t: { userId: string; appId: string; pushkey: string }) => JSON.stringify([t.userId, t.appId, t.pushkey]);

/** What delivery reports to the metrics (src/metrics); a badge update is a notification without an event. */
export interface DeliveryMetrics {
  delivered(badgeOnly: boolean): void;
  failed(badgeOnly: boolean): void;
}

export class PushDelivery {
  readonly options: DeliveryOptions;
  metrics: DeliveryMetrics | undefined;
  private readonly queues = new Map<string, Queue>();
  private closed = false;
  private readonly idleWaiters: Array<() => void> = [];
  private readonly agents: OutboundAgents;

  constructor(
    private readonly deps: DeliveryDeps,
    options: Partial<DeliveryOptions> = {},
  ) {
    this.options = { ...DEFAULT_DELIVERY_OPTIONS, ...options };
    this.agents = outboundAgents(deps.outbound);
  }

  /** Queues one `{ notification }` body for a pusher. */
  enqueue(target: PushTarget, body: unknown): void {
    if (this.closed) return;
    const key = keyOf(target);
    let q = this.queues.get(key);
    if (!q) {
      if (this.queues.size >= this.options.maxPushers) {
        this.deps.logger.warn({ appId: target.appId }, 'push delivery: too many pushers with pending work, notification dropped');
        return;
      }
      q = { target, items: [], attempt: 0, timer: undefined, inFlight: undefined };
      this.queues.set(key, q);
    }
    q.target = target;
    q.items.push(body);
    if (q.items.length > this.options.maxQueuePerPusher) {
      // The oldest that is not on the wire right now.
      const drop = q.inFlight ? 1 : 0;
      q.items.splice(drop, 1);
      if (drop === 0) q.attempt = 0;
      this.deps.logger.warn({ appId: target.appId }, 'push delivery: queue full, oldest notification dropped');
    }
    if (!q.inFlight && !q.timer) void this.send(key, q);
  }

  /** The pusher was deleted: drop what is waiting for it. */
  forget(target: { userId: string; appId: string; pushkey: string }): void {
    const key = keyOf(target);
    const q = this.queues.get(key);
    if (!q) return;
    if (q.timer) clearTimeout(q.timer);
    q.inFlight?.abort();
    this.queues.delete(key);
    this.checkIdle();
  }

  /** Notifications waiting (including one in flight), for tests and metrics. */
  pending(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.items.length;
    return n;
  }

  /** Resolves once nothing is queued or waiting for a retry. */
  idle(): Promise<void> {
    if (this.queues.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    for (const q of this.queues.values()) {
      if (q.timer) clearTimeout(q.timer);
      q.timer = undefined;
      q.inFlight?.abort();
    }
    this.queues.clear();
    this.agents.destroy();
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.queues.size > 0) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private async send(key: string, q: Queue): Promise<void> {
    while (!this.closed && this.queues.get(key) === q && q.items.length > 0) {
      const body = q.items[0];
      const controller = new AbortController();
      q.inFlight = controller;
      const timeout = setTimeout(() => controller.abort(), this.options.requestTimeoutMs);
      let rejected: string[] | undefined;
      let failure: string | undefined;
      try {
        const res = await sendOutbound(this.agents, q.target.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: Buffer.from(JSON.stringify(body), 'utf8'),
          signal: controller.signal,
          maxBytes: this.options.maxResponseBytes,
        });
        if (res.status >= 200 && res.status < 300) {
          try {
            const parsed = JSON.parse(res.body.toString('utf8')) as { rejected?: unknown };
            rejected = Array.isArray(parsed.rejected) ? parsed.rejected.filter((x): x is string => typeof x === 'string') : [];
          } catch {
            rejected = [];
          }
        } else {
          failure = `HTTP ${res.status}`;
        }
      } catch (err) {
        failure = (err as Error).name === 'AbortError' ? 'timeout or aborted' : (err as Error).message;
      } finally {
        clearTimeout(timeout);
        q.inFlight = undefined;
      }
      if (this.closed || this.queues.get(key) !== q) return;

      const badgeOnly = isBadgeOnly(body);
      if (failure === undefined) {
        this.metrics?.delivered(badgeOnly);
        q.items.shift();
        q.attempt = 0;
        if (rejected?.includes(q.target.pushkey)) {
          // The queue stays (busy) until the pusher is gone, so idle() never answers before the removal.
          q.inFlight = new AbortController();
          try {
            await this.deps.onRejected(q.target);
          } catch (err) {
            this.deps.logger.error({ err }, 'push delivery: removing a rejected pusher failed');
          }
          if (this.queues.get(key) === q) this.queues.delete(key);
          this.checkIdle();
          return;
        }
        continue;
      }

      this.metrics?.failed(badgeOnly);
      q.attempt++;
      this.deps.logger.warn({ appId: q.target.appId, attempt: q.attempt, failure }, 'push delivery failed');
      if (q.attempt >= this.options.maxAttempts) {
        q.items.shift();
        q.attempt = 0;
        this.deps.logger.warn({ appId: q.target.appId }, 'push delivery: giving up on a notification');
      }
      const delay = Math.min(this.options.retryBaseMs * 2 ** Math.max(q.attempt - 1, 0), this.options.maxBackoffMs);
      q.timer = setTimeout(() => {
        q.timer = undefined;
        void this.send(key, q);
      }, delay);
      q.timer.unref?.();
      return;
    }
    if (this.queues.get(key) === q && q.items.length === 0 && !q.timer) {
      this.queues.delete(key);
      this.checkIdle();
    }
  }
}

function isBadgeOnly(body: unknown): boolean {
  const notification = (body as { notification?: { event_id?: unknown } } | undefined)?.notification;
  return notification?.event_id === undefined;
}
