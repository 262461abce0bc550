// Message retention (Synapse's `retention` config and MSC1763's m.room.retention state event), pure logic.
import { MatrixError } from '../errors.js';

export interface RetentionPolicy {
  minLifetime: number | null;
  maxLifetime: number | null;
}

export interface PurgeJob {
  intervalMs: number;
  /** Rooms whose max_lifetime is above this (exclusive); null: no lower bound. */
  shortestMaxLifetime: number | null;
  /** Rooms whose max_lifetime is at most this (inclusive); null: no upper bound. */
  longestMaxLifetime: number | null;
}

export interface RetentionSettings {
  enabled: boolean;
  defaultPolicy: RetentionPolicy;
  allowedLifetimeMin: number | null;
  allowedLifetimeMax: number | null;
  purgeJobs: PurgeJob[];
}

const isInteger = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** A local m.room.retention event, checked as Synapse's EventValidator does: a state event with integer lifetimes. */
export function assertValidRetentionEvent(stateKey: string | undefined, content: Record<string, unknown>): void {
  if (stateKey === undefined) throw new MatrixError('M_UNKNOWN', 'm.room.retention must be a state event', 400);
  for (const key of ['min_lifetime', 'max_lifetime'] as const) {
    const value = content[key];
    if (value !== undefined && value !== null && !isInteger(value)) throw new MatrixError('M_BAD_JSON', `'${key}' must be an integer`);
  }
}

/** The policy in a room's m.room.retention content; anything not an integer counts as unset (events from other servers). */
export function policyFromContent(content: Record<string, unknown> | undefined): RetentionPolicy {
  const value = (key: string) => {
    const v = content?.[key];
    return isInteger(v) ? v : null;
  };
  return { minLifetime: value('min_lifetime'), maxLifetime: value('max_lifetime') };
}

/**
 * Whether a purge job handles a room with this policy (Synapse's purge_history_for_rooms_in_range):
 * rooms with a max_lifetime in (shortest, longest]; rooms without one when the default max_lifetime is.
 */
export function jobHandlesRoom(job: PurgeJob, policy: RetentionPolicy | undefined, settings: RetentionSettings): boolean {
  const inRange = (ms: number) => (job.shortestMaxLifetime === null || ms > job.shortestMaxLifetime) && (job.longestMaxLifetime === null || ms <= job.longestMaxLifetime);
  if (policy?.maxLifetime != null) return inRange(policy.maxLifetime);
  const fallback = settings.defaultPolicy.maxLifetime;
  return fallback !== null && inRange(fallback);
}

/** The room's max_lifetime after the default and the allowed_lifetime_min/max clamp; null: keep forever. */
export function effectiveMaxLifetime(policy: RetentionPolicy | undefined, settings: RetentionSettings): number | null {
  let max = policy?.maxLifetime ?? settings.defaultPolicy.maxLifetime;
  if (max === null) return null;
  // First the floor (the operator may be required to keep things), then the ceiling (required to delete).
  if (settings.allowedLifetimeMin !== null) max = Math.max(settings.allowedLifetimeMin, max);
  if (settings.allowedLifetimeMax !== null) max = Math.min(max, settings.allowedLifetimeMax);
  return max;
}
