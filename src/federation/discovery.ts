/**
 * Server discovery (spec: Server-Server API, "Resolving server names"): turns a server name into the
 * address to connect to, the Host header and the name the TLS certificate must carry.
 * DNS and the .well-known fetch are injected, so every decision is unit-testable.
 */
import { resolveSrv as dnsResolveSrv } from 'node:dns/promises';
import { LruCache } from '../util/lru.js';
import { parseServerName } from './serverName.js';

export interface ResolvedServer {
  serverName: string;
  /** DNS name or IP address (no brackets) to connect to. */
  connectHost: string;
  port: number;
  /** The Host header to send. */
  hostHeader: string;
  /** SNI and the name the certificate must match; undefined for IP literals (the IP is checked). */
  tlsServername: string | undefined;
}

export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** A .well-known response after redirects; undefined when the server could not be reached. */
export interface WellKnownResponse {
  status: number;
  headers: Record<string, string | undefined>;
  body: unknown;
}

export interface DiscoveryDeps {
  /** SRV lookup; resolve to [] (or reject) when there are no records. */
  resolveSrv(name: string): Promise<SrvRecord[]>;
  /** GET https://<hostname>/.well-known/matrix/server, following redirects. */
  fetchWellKnown(hostname: string): Promise<WellKnownResponse | undefined>;
  now(): number;
}

export const DEFAULT_FEDERATION_PORT = 8448;
const WELL_KNOWN_DEFAULT_MS = 24 * 3600_000;
const WELL_KNOWN_MIN_MS = 5 * 60_000;
const WELL_KNOWN_MAX_MS = 48 * 3600_000;
const WELL_KNOWN_ERROR_MIN_MS = 2 * 60_000;
const WELL_KNOWN_ERROR_MAX_MS = 3600_000;
/** SRV answers carry no TTL through node:dns; resolved addresses are reused for at most this long. */
const RESOLVED_MAX_MS = 3600_000;

interface WellKnownEntry {
  /** The delegated server name, or undefined after a failure. */
  delegated: string | undefined;
  expiresAt: number;
  failures: number;
}

/** Cache lifetime of a successful .well-known response from its Cache-Control / Expires headers, bounded. */
export function wellKnownCacheMs(headers: Record<string, string | undefined>, now: number): number {
  let ms: number | undefined;
  const cc = headers['cache-control'];
  if (cc !== undefined) {
    if (/(?:^|,)\s*(?:no-store|no-cache)\b/i.test(cc)) ms = 0;
    const maxAge = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(cc);
    if (maxAge && ms === undefined) ms = Number(maxAge[1]) * 1000;
  }
  if (ms === undefined && headers.expires !== undefined) {
    const expires = Date.parse(headers.expires);
    if (!Number.isNaN(expires)) ms = expires - now;
  }
  return Math.min(Math.max(ms ?? WELL_KNOWN_DEFAULT_MS, WELL_KNOWN_MIN_MS), WELL_KNOWN_MAX_MS);
}

/** The `m.server` value of a .well-known body, or undefined when the response is unusable. */
export function delegatedServerName(res: WellKnownResponse | undefined): string | undefined {
  if (!res || res.status !== 200) return undefined;
  const body = res.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const server = (body as Record<string, unknown>)['m.server'];
  if (typeof server !== 'string' || !parseServerName(server)) return undefined;
  return server;
}

function pickSrv(records: SrvRecord[]): SrvRecord | undefined {
  // "." as target means the service is decidedly not available at this domain (RFC 2782).
  const usable = records.filter((r) => r.name !== '' && r.name !== '.');
  usable.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
  return usable[0];
}

export class ServerResolver {
  private readonly wellKnown: LruCache<string, WellKnownEntry>;
  private readonly resolved: LruCache<string, { value: ResolvedServer; expiresAt: number }>;
  private readonly inFlight = new Map<string, Promise<ResolvedServer>>();

  constructor(
    private readonly deps: DiscoveryDeps,
    maxEntries = 2048,
  ) {
    this.wellKnown = new LruCache(maxEntries);
    this.resolved = new LruCache(maxEntries);
  }

  async resolve(serverName: string): Promise<ResolvedServer> {
    const cached = this.resolved.get(serverName);
    if (cached && cached.expiresAt > this.deps.now()) return cached.value;
    let pending = this.inFlight.get(serverName);
    if (!pending) {
      pending = this.resolveUncached(serverName).finally(() => this.inFlight.delete(serverName));
      this.inFlight.set(serverName, pending);
    }
    return pending;
  }

  /** Forget what is known about a server (after its .well-known changed, or in tests). */
  forget(serverName: string): void {
    this.resolved.delete(serverName);
    this.wellKnown.delete(serverName);
  }

  private remember(value: ResolvedServer, ttlMs: number): ResolvedServer {
    this.resolved.set(value.serverName, { value, expiresAt: this.deps.now() + Math.min(ttlMs, RESOLVED_MAX_MS) });
    return value;
  }

  private async resolveUncached(serverName: string): Promise<ResolvedServer> {
    const parsed = parseServerName(serverName);
    if (!parsed) throw new Error(`invalid server name ${JSON.stringify(serverName)}`);
    // Steps 1 and 2: an IP literal, or any host with an explicit port, is used as it is.
    if (parsed.isIpLiteral) {
      return this.remember(
        { serverName, connectHost: parsed.address, port: parsed.port ?? DEFAULT_FEDERATION_PORT, hostHeader: serverName, tlsServername: undefined },
        RESOLVED_MAX_MS,
      );
    }
    if (parsed.port !== undefined) {
      return this.remember(
        { serverName, connectHost: parsed.host, port: parsed.port, hostHeader: serverName, tlsServername: parsed.host },
        RESOLVED_MAX_MS,
      );
    }
    // Step 3: .well-known delegation.
    const wk = await this.lookupWellKnown(parsed.host);
    const ttl = Math.max(wk.expiresAt - this.deps.now(), 0);
    if (wk.delegated !== undefined) {
      const d = parseServerName(wk.delegated)!;
      if (d.isIpLiteral) {
        return this.remember(
          { serverName, connectHost: d.address, port: d.port ?? DEFAULT_FEDERATION_PORT, hostHeader: wk.delegated, tlsServername: undefined },
          ttl,
        );
      }
      if (d.port !== undefined) {
        return this.remember({ serverName, connectHost: d.host, port: d.port, hostHeader: wk.delegated, tlsServername: d.host }, ttl);
      }
      return this.remember(await this.viaSrv(serverName, d.host), ttl);
    }
    // Steps 4 to 6: SRV on the server name itself, then port 8448.
    return this.remember(await this.viaSrv(serverName, parsed.host), ttl);
  }

  private async viaSrv(serverName: string, hostname: string): Promise<ResolvedServer> {
    for (const service of ['_matrix-fed._tcp', '_matrix._tcp']) {
      const records = await this.deps.resolveSrv(`${service}.${hostname}`).catch(() => [] as SrvRecord[]);
      const pick = pickSrv(records);
      if (pick) {
        return { serverName, connectHost: pick.name.replace(/\.$/, ''), port: pick.port, hostHeader: hostname, tlsServername: hostname };
      }
    }
    return { serverName, connectHost: hostname, port: DEFAULT_FEDERATION_PORT, hostHeader: hostname, tlsServername: hostname };
  }

  private async lookupWellKnown(hostname: string): Promise<WellKnownEntry> {
    const now = this.deps.now();
    const cached = this.wellKnown.get(hostname);
    if (cached && cached.expiresAt > now) return cached;
    const res = await this.deps.fetchWellKnown(hostname).catch(() => undefined);
    const delegated = delegatedServerName(res);
    let entry: WellKnownEntry;
    if (delegated !== undefined) {
      entry = { delegated, expiresAt: now + wellKnownCacheMs(res!.headers, now), failures: 0 };
    } else {
      // Errors are cached too, backing off exponentially up to an hour.
      const failures = (cached?.delegated === undefined ? (cached?.failures ?? 0) : 0) + 1;
      const ms = Math.min(WELL_KNOWN_ERROR_MIN_MS * 2 ** (failures - 1), WELL_KNOWN_ERROR_MAX_MS);
      entry = { delegated: undefined, expiresAt: now + ms, failures };
    }
    this.wellKnown.set(hostname, entry);
    return entry;
  }
}

export async function systemResolveSrv(name: string): Promise<SrvRecord[]> {
  return dnsResolveSrv(name);
}
