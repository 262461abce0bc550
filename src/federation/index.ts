/**
 * The federation services, built once per homeserver: discovery, the signed HTTPS client, the key store
 * and inbound request authentication. Routes are in routes.ts.
 */
import { readFileSync } from 'node:fs';
import type { SecureVersion } from 'node:tls';
import { ConfigError } from '../config/load.js';
import { parseDuration, type HomeserverConfig } from '../config/schema.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { FederationAuthenticator } from './auth.js';
import { FederationClient } from './client.js';
import { ServerResolver, systemResolveSrv, type DiscoveryDeps } from './discovery.js';
import { KeyStore } from './keyStore.js';
import { outboundPolicyOf } from '../net/outboundPolicy.js';

export { FederationRequestError, type FederationRequest } from './client.js';
export type { ServerKeys } from './keyStore.js';

export interface FederationServices {
  /** Sends signed requests to other servers: `client.get(destination, path, query)`, `client.request({...})`. */
  client: FederationClient;
  keyStore: KeyStore;
  resolver: ServerResolver;
  /** Verifies an inbound X-Matrix request (wired into HttpDeps.authenticateServer). */
  authenticator: FederationAuthenticator;
  /** federation_domain_whitelist (our own name always passes). */
  isAllowed(serverName: string): boolean;
  close(): void;
}

export interface FederationOptions {
  /** Replace DNS SRV lookups or the .well-known fetch (tests). */
  discovery?: Partial<Pick<DiscoveryDeps, 'resolveSrv' | 'fetchWellKnown'>>;
}

const TLS_VERSIONS: Record<string, SecureVersion> = { '1': 'TLSv1', '1.0': 'TLSv1', '1.1': 'TLSv1.1', '1.2': 'TLSv1.2', '1.3': 'TLSv1.3' };

export function tlsMinVersion(value: HomeserverConfig['federation_client_minimum_tls_version']): SecureVersion {
  const v = TLS_VERSIONS[String(value)];
  if (!v) throw new ConfigError(`federation_client_minimum_tls_version: unsupported version ${value}`);
  return v;
}

function readCaList(paths: readonly string[] | undefined): string[] | undefined {
  if (!paths || paths.length === 0) return undefined;
  return paths.map((p) => {
    try {
      return readFileSync(p, 'utf8');
    } catch (err) {
      throw new ConfigError(`federation_custom_ca_list: cannot read ${p}: ${(err as Error).message}`);
    }
  });
}

export function createFederation(base: ServiceDeps, options: FederationOptions = {}): FederationServices {
  const { config, serverName, logger, clock, db, signingKey } = base;
  const whitelist = config.federation_domain_whitelist ? new Set([...config.federation_domain_whitelist, serverName]) : undefined;
  const isAllowed = (name: string) => whitelist === undefined || whitelist.has(name);

  let client: FederationClient;
  const resolver = new ServerResolver({
    resolveSrv: options.discovery?.resolveSrv ?? systemResolveSrv,
    fetchWellKnown: options.discovery?.fetchWellKnown ?? ((host) => client.fetchWellKnown(host)),
    now: () => clock.now(),
  });
  client = new FederationClient({
    serverName,
    signingKey,
    logger,
    tls: {
      verifyCertificates: config.federation_verify_certificates,
      ca: readCaList(config.federation_custom_ca_list),
      minVersion: tlsMinVersion(config.federation_client_minimum_tls_version),
    },
    outbound: outboundPolicyOf(config),
    resolve: (name) => resolver.resolve(name),
    isAllowed,
  });
  const keyStore = new KeyStore({
    db,
    serverName,
    signingKey,
    oldSigningKeys: config.old_signing_keys,
    clock,
    logger,
    client,
    trustedKeyServers: config.trusted_key_servers,
    keyRefreshIntervalMs: parseDuration(config.key_refresh_interval),
  });
  const authenticator = new FederationAuthenticator({ serverName, keyStore, isAllowed, clock, logger });
  return { client, keyStore, resolver, authenticator, isAllowed, close: () => client.close() };
}
