// Token buckets keyed by user or address (spec: 429 M_LIMIT_EXCEEDED with retry_after_ms).
export interface BucketConfig {
  per_second: number;
  burst_count: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

const MAX_BUCKETS = 100_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly config: BucketConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token; returns 0 when allowed, else how many ms until one is available. */
  take(key: string): number {
    return this.consume(key, 1);
  }

  /** Like take() but spends nothing: 0 when a token is there, else how many ms until one is. */
  check(key: string): number {
    return this.consume(key, 0);
  }

  private consume(key: string, cost: 0 | 1): number {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= MAX_BUCKETS) this.prune(now);
      bucket = { tokens: this.config.burst_count, updatedMs: now };
      this.buckets.set(key, bucket);
    } else {
      const refill = ((now - bucket.updatedMs) / 1000) * this.config.per_second;
      bucket.tokens = Math.min(this.config.burst_count, bucket.tokens + refill);
      bucket.updatedMs = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= cost;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / this.config.per_second) * 1000);
  }

  // Full buckets carry no information, so they are the ones to forget; the map stays bounded.
  private prune(now: number): void {
    for (const [key, bucket] of this.buckets) {
      const refill = ((now - bucket.updatedMs) / 1000) * this.config.per_second;
      if (bucket.tokens + refill >= this.config.burst_count) this.buckets.delete(key);
    }
    if (this.buckets.size >= MAX_BUCKETS) this.buckets.clear();
  }
}
