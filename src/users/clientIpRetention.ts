import type { ServiceDeps } from '../serviceDeps.js';
import { parseDuration } from '../config/schema.js';
import { clearLastSeenBefore } from '../storage/repositories/devices.js';

// Synapse's user_ips_max_age: how long a device's last-seen address, user agent and time are kept.
const MAX_SWEEP_INTERVAL_MS = 3_600_000;
const MIN_SWEEP_INTERVAL_MS = 1_000;

/** The configured max age in ms: null keeps them forever, 0 stores none at all. */
export function clientIpMaxAgeMs(config: ServiceDeps['config']): number | null {
  const value = config.user_ips_max_age;
  return value === null ? null : parseDuration(value);
}

/** Clears devices' last_seen_ip/_user_agent/_ts once older than user_ips_max_age, on a timer. */
export class ClientIpRetention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: Pick<ServiceDeps, 'config' | 'db' | 'clock' | 'logger'>) {}

  start(): void {
    const maxAge = clientIpMaxAgeMs(this.deps.config);
    if (maxAge === null || this.timer) return;
    // Often enough that nothing outlives the max age by much more than a quarter of it.
    const every = Math.min(MAX_SWEEP_INTERVAL_MS, Math.max(MIN_SWEEP_INTERVAL_MS, Math.floor(maxAge / 4)));
    this.timer = setInterval(() => void this.sweep(), every);
    this.timer.unref();
    // At start-up too, so values kept under a longer setting go at once.
    void this.sweep();
  }

  /** One pass (a pass already running is waited for instead). */
  sweep(): Promise<void> {
    const maxAge = clientIpMaxAgeMs(this.deps.config);
    if (maxAge === null || this.running) return this.running ?? Promise.resolve();
    this.running = clearLastSeenBefore(this.deps.db.knex, this.deps.clock.now() - maxAge)
      .then((n) => {
        if (n > 0) this.deps.logger.info({ count: n }, 'user_ips_max_age: cleared devices’ last-seen address and user agent');
      })
      .catch((err: unknown) => this.deps.logger.warn({ err }, 'clearing old client addresses failed'))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
