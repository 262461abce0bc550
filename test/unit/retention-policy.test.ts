import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { retentionSettings } from '../../src/rooms/retentionService.js';
import { assertValidRetentionEvent, effectiveMaxLifetime, jobHandlesRoom, policyFromContent, type RetentionSettings } from '../../src/rooms/retentionPolicy.js';

const DAY = 86_400_000;
const settings = (over: Partial<RetentionSettings> = {}): RetentionSettings => ({
  enabled: true,
  defaultPolicy: { minLifetime: null, maxLifetime: null },
  allowedLifetimeMin: null,
  allowedLifetimeMax: null,
  purgeJobs: [],
  ...over,
});
const job = (shortest: number | null, longest: number | null) => ({ intervalMs: 1000, shortestMaxLifetime: shortest, longestMaxLifetime: longest });

describe('retention policy (Synapse semantics)', () => {
  it('clamps the max_lifetime into allowed_lifetime_min/max, the floor first', () => {
    const s = settings({ allowedLifetimeMin: DAY, allowedLifetimeMax: 30 * DAY });
    expect(effectiveMaxLifetime({ minLifetime: null, maxLifetime: 1000 }, s)).toBe(DAY);
    expect(effectiveMaxLifetime({ minLifetime: null, maxLifetime: 90 * DAY }, s)).toBe(30 * DAY);
    expect(effectiveMaxLifetime({ minLifetime: null, maxLifetime: 7 * DAY }, s)).toBe(7 * DAY);
    expect(effectiveMaxLifetime(undefined, s)).toBeNull();
    expect(effectiveMaxLifetime(undefined, settings({ defaultPolicy: { minLifetime: null, maxLifetime: 5 * DAY } }))).toBe(5 * DAY);
  });

  it('lets each purge job handle the rooms whose max_lifetime is in (shortest, longest]', () => {
    const s = settings({ defaultPolicy: { minLifetime: null, maxLifetime: 10 * DAY } });
    const short = job(null, 3 * DAY);
    const long = job(3 * DAY, null);
    const threeDays = { minLifetime: null, maxLifetime: 3 * DAY };
    expect(jobHandlesRoom(short, threeDays, s)).toBe(true);
    expect(jobHandlesRoom(long, threeDays, s)).toBe(false);
    // Rooms without a policy go with the default's max_lifetime, and with no job when there is no default.
    expect(jobHandlesRoom(short, undefined, s)).toBe(false);
    expect(jobHandlesRoom(long, undefined, s)).toBe(true);
    expect(jobHandlesRoom(job(null, null), undefined, settings())).toBe(false);
    expect(jobHandlesRoom(long, { minLifetime: 1, maxLifetime: null }, s)).toBe(true);
  });

  it('reads policies leniently and validates local events strictly', () => {
    expect(policyFromContent({ max_lifetime: 1000, min_lifetime: '5' })).toEqual({ minLifetime: null, maxLifetime: 1000 });
    expect(policyFromContent(undefined)).toEqual({ minLifetime: null, maxLifetime: null });
    expect(() => assertValidRetentionEvent('', { max_lifetime: 1000, min_lifetime: 10 })).not.toThrow();
    expect(() => assertValidRetentionEvent('', {})).not.toThrow();
    expect(() => assertValidRetentionEvent('', { max_lifetime: 1.5 })).toThrow(/max_lifetime/);
    expect(() => assertValidRetentionEvent('', { min_lifetime: '1d' })).toThrow(/min_lifetime/);
    expect(() => assertValidRetentionEvent(undefined, { max_lifetime: 1 })).toThrow(/state event/);
  });

  it('parses the retention config with Synapse defaults and refuses what Synapse refuses', () => {
    const base = { server_name: 'example.org' };
    const off = retentionSettings(parseConfig(base, 'test'));
    expect(off.enabled).toBe(false);
    expect(off.purgeJobs).toEqual([{ intervalMs: DAY, shortestMaxLifetime: null, longestMaxLifetime: null }]);
    const on = retentionSettings(
      parseConfig({ ...base, retention: { enabled: true, default_policy: { min_lifetime: '1d', max_lifetime: '1y' }, allowed_lifetime_max: '2y', purge_jobs: [{ interval: '12h', longest_max_lifetime: '3d' }] } }, 'test'),
    );
    expect(on.defaultPolicy).toEqual({ minLifetime: DAY, maxLifetime: 365 * DAY });
    expect(on.purgeJobs).toEqual([{ intervalMs: 12 * 3_600_000, shortestMaxLifetime: null, longestMaxLifetime: 3 * DAY }]);
    for (const bad of [
      { default_policy: { min_lifetime: '2d', max_lifetime: '1d' } },
      { allowed_lifetime_min: '2d', allowed_lifetime_max: '1d' },
      { purge_jobs: [{ shortest_max_lifetime: '1d' }] },
      { purge_jobs: [{ interval: '1d', shortest_max_lifetime: '3d', longest_max_lifetime: '1d' }] },
      { purge_jobs: [{ interval: 0 }] },
      { unknown_key: true },
    ]) {
      expect(() => parseConfig({ ...base, retention: { enabled: true, ...bad } }, 'test')).toThrow(/retention/);
    }
  });
});
