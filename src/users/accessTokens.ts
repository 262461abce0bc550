import type { Knex } from 'knex';
import { unknownToken } from '../errors.js';
import type { Requester } from '../http/route.js';
import type { ServiceDeps } from '../serviceDeps.js';
import type { Db } from '../storage/database.js';
import * as tokensRepo from '../storage/repositories/tokens.js';
import { updateLastSeen } from '../storage/repositories/devices.js';
import { clientIpMaxAgeMs } from './clientIpRetention.js';
import type { UserHooks } from './hooks.js';
import { LruCache } from '../util/lru.js';
import { generateAccessToken, generateRefreshToken, hashToken } from './tokens.js';
import { inTransaction } from './unitOfWork.js';

// Spec: Client-Server API, "Client Authentication" → "Using access tokens" and "Refreshing access tokens".

export interface IssuedTokens {
  accessToken: string;
  refreshToken?: string;
  expiresInMs?: number;
  /** Internal: the row of the refresh token, for rotation bookkeeping. Never sent to clients. */
  refreshTokenId?: number;
}

interface CachedToken {
  tokenId: number;
  userId: string;
  deviceId: string | null;
  expiresTs: number | null;
  refreshTokenId: number | null;
  isGuest: boolean;
}

/** How long a process trusts its cached token lookup. Revocation in this process evicts at once; other
 * processes sharing the database see it within this window. */
const CACHE_TTL_MS = 10_000;
const CACHE_MAX = 10_000;
/** Devices' last-seen columns are written at most this often per device. */
const LAST_SEEN_INTERVAL_MS = 60_000;
const LAST_SEEN_MAX = 50_000;

export class AccessTokens {
  private readonly cache: LruCache<string, CachedToken>;
  private readonly lastSeenWrites = new Map<string, number>();

  constructor(
    private readonly deps: ServiceDeps,
    private readonly hooks: UserHooks,
  ) {
    this.cache = new LruCache(CACHE_MAX, CACHE_TTL_MS, () => deps.clock.now());
  }

  private get knex(): Knex {
    return this.deps.db.knex;
  }

  /**
   * Issues an access token (and a refresh token when asked) for a device, inside the caller's unit of
   * work. Access tokens expire only when the client supports refresh and a lifetime is configured.
   */
  async issue(db: Db, opts: { userId: string; deviceId: string; withRefresh: boolean }): Promise<IssuedTokens> {
    const now = this.deps.clock.now();
    const accessToken = generateAccessToken();
    if (!opts.withRefresh) {
      await tokensRepo.insertAccessToken(db, {
        tokenHash: hashToken(accessToken), userId: opts.userId, deviceId: opts.deviceId, createdTs: now, expiresTs: null, refreshTokenId: null,
      });
      return { accessToken };
    }
    const refreshToken = generateRefreshToken();
    const lifetime = this.deps.config.access_token_lifetime_ms;
    const refreshLifetime = this.deps.config.refresh_token_lifetime_ms;
    const refreshTokenId = await tokensRepo.insertRefreshToken(db, {
      tokenHash: hashToken(refreshToken), userId: opts.userId, deviceId: opts.deviceId, createdTs: now,
      expiresTs: refreshLifetime !== undefined ? now + refreshLifetime : null,
    });
    await tokensRepo.insertAccessToken(db, {
      tokenHash: hashToken(accessToken), userId: opts.userId, deviceId: opts.deviceId, createdTs: now,
      expiresTs: lifetime !== undefined ? now + lifetime : null, refreshTokenId,
    });
    return lifetime !== undefined ? { accessToken, refreshToken, expiresInMs: lifetime, refreshTokenId } : { accessToken, refreshToken, refreshTokenId };
  }

  /** Resolves an access token to its requester, or throws 401 M_UNKNOWN_TOKEN. */
  async authenticate(token: string, ctx: { ip: string; userAgent: string | undefined; query: Record<string, unknown>; path?: string }): Promise<Requester> {
    for (const authenticator of this.hooks.authenticators) {
      const requester = await authenticator(token, ctx);
      if (requester) return requester;
    }
    const hash = hashToken(token);
    let entry = this.cache.get(hash);
    if (!entry) {
      const row = await tokensRepo.findAccessToken(this.knex, hash);
      if (!row || row.deactivated) throw unknownToken();
      if (row.refreshTokenId !== null && !row.used) await this.firstUseOfRefreshedToken(row.id, row.refreshTokenId);
      entry = {
        tokenId: row.id,
        userId: row.userId,
        deviceId: row.deviceId,
        expiresTs: row.expiresTs,
        refreshTokenId: row.refreshTokenId,
        isGuest: row.isGuest,
      };
      this.cache.set(hash, entry);
    }
    if (entry.expiresTs !== null && entry.expiresTs <= this.deps.clock.now()) {
      throw unknownToken('Access token has expired', true);
    }
    if (entry.deviceId !== null) this.touchDevice(entry.userId, entry.deviceId, ctx.ip, ctx.userAgent);
    return {
      userId: entry.userId,
      deviceId: entry.deviceId ?? undefined,
      tokenId: entry.tokenId,
      isGuest: entry.isGuest,
      appserviceId: undefined,
    };
  }

  /**
   * Spec: "The old refresh token remains valid until the new access token or refresh token is used, at
   * which point the old refresh token is revoked." The old access token goes with it.
   */
  private async firstUseOfRefreshedToken(tokenId: number, refreshTokenId: number): Promise<void> {
    const revoked = await this.knex.transaction(async (trx) => {
      await tokensRepo.markAccessTokenUsed(trx, tokenId);
      return this.revokeRefreshTokens(trx, await tokensRepo.predecessorsOf(trx, refreshTokenId));
    });
    this.evictRefreshTokens(revoked);
  }

  private async revokeRefreshTokens(db: Db, ids: number[]): Promise<number[]> {
    await tokensRepo.deleteAccessTokensForRefreshTokens(db, ids);
    await tokensRepo.deleteRefreshTokens(db, ids);
    return ids;
  }

  /** Spec: "POST /_matrix/client/v3/refresh". Rotates the refresh token and issues a new access token. */
  async refresh(refreshToken: string): Promise<IssuedTokens> {
    const now = this.deps.clock.now();
    return inTransaction(this.knex, this.deps.logger, async (work) => {
      const rt = await tokensRepo.findRefreshToken(work.db, hashToken(refreshToken));
      if (!rt) throw unknownToken('Unknown refresh token');
      if (rt.expiresTs !== null && rt.expiresTs <= now) throw unknownToken('Refresh token has expired');
      // Using this token revokes the token it replaced; a rotation of it whose result was never used is superseded.
      const revoke = await tokensRepo.predecessorsOf(work.db, rt.id);
      if (rt.nextTokenId !== null) revoke.push(rt.nextTokenId);
      await this.revokeRefreshTokens(work.db, revoke);
      work.afterCommit(() => this.evictRefreshTokens(revoke));
      const issued = await this.issue(work.db, { userId: rt.userId, deviceId: rt.deviceId, withRefresh: true });
      await tokensRepo.setNextRefreshToken(work.db, rt.id, issued.refreshTokenId!);
      return issued;
    });
  }

  /** Revokes every token of the given devices (inside the caller's unit of work). */
  async revokeDevices(db: Db, userId: string, deviceIds: readonly string[]): Promise<void> {
    await tokensRepo.deleteAccessTokensForDevices(db, userId, deviceIds);
    await tokensRepo.deleteRefreshTokensForDevices(db, userId, deviceIds);
  }

  /** Revokes every token of a user except the access token `keepTokenId` and refresh tokens of `keepDeviceId`. */
  async revokeUser(db: Db, userId: string, keep: { tokenId?: number; deviceId?: string } = {}): Promise<void> {
    await tokensRepo.deleteAccessTokensForUser(db, userId, keep.tokenId);
    await tokensRepo.deleteRefreshTokensForUser(db, userId, keep.deviceId);
  }

  async revokeToken(db: Db, tokenId: number): Promise<void> {
    await tokensRepo.deleteAccessToken(db, tokenId);
  }

  // Cache eviction, called after the revoking transaction committed.
  evictDevices(userId: string, deviceIds: readonly string[]): void {
    const set = new Set(deviceIds);
    this.cache.deleteWhere((e) => e.userId === userId && e.deviceId !== null && set.has(e.deviceId));
    for (const d of deviceIds) this.lastSeenWrites.delete(`${userId}\u0000${d}`);
  }

  evictUser(userId: string, keepTokenId?: number): void {
    this.cache.deleteWhere((e) => e.userId === userId && e.tokenId !== keepTokenId);
  }

  evictToken(tokenId: number): void {
    this.cache.deleteWhere((e) => e.tokenId === tokenId);
  }

  private evictRefreshTokens(ids: readonly number[]): void {
    if (ids.length === 0) return;
    const set = new Set(ids);
    this.cache.deleteWhere((e) => e.refreshTokenId !== null && set.has(e.refreshTokenId));
  }

  // Last-seen bookkeeping is best effort and throttled: a write per device per minute at most.
  private touchDevice(userId: string, deviceId: string, ip: string, userAgent: string | undefined): void {
    if (clientIpMaxAgeMs(this.deps.config) === 0) return;
    const key = `${userId}\u0000${deviceId}`;
    const now = this.deps.clock.now();
    const last = this.lastSeenWrites.get(key);
    if (last !== undefined && now - last < LAST_SEEN_INTERVAL_MS) return;
    if (this.lastSeenWrites.size >= LAST_SEEN_MAX) this.lastSeenWrites.clear();
    this.lastSeenWrites.set(key, now);
    updateLastSeen(this.knex, userId, deviceId, now, ip, userAgent).catch((err: unknown) => {
      this.deps.logger.warn({ err }, 'could not update device last-seen');
    });
  }
}
