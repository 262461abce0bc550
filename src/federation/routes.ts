import { z } from 'zod';
import { signJson } from '../crypto/signing.js';
import { MatrixError, notFound } from '../errors.js';
import type { Services } from '../homeserver.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import { getProfile } from '../storage/repositories/profiles.js';
import type { ServerKeys } from './keyStore.js';
import { serverNameOf } from './serverName.js';
import { SERVER_SOFTWARE_NAME, SERVER_VERSION } from './version.js';

export const KEY_V2 = ['/_matrix/key/v2'] as const;
export const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;

/** At most this many servers per notary query (each may cost an outbound request). */
const MAX_NOTARY_SERVERS = 100;

const timestamp = z.string().regex(/^\d{1,16}$/, 'must be a timestamp').transform(Number);

// Spec: Server-Server API, "Retrieving server keys", "GET /_matrix/federation/v1/version", "Query".
export function federationRoutes(services: Services): RouteDefinition[] {
  const { federation, serverName, signingKey, clock, db } = services;
  const { keyStore } = federation;
  const notarised = (list: ServerKeys[]) => list.map((k) => signJson(k, serverName, signingKey));

  return [
    // Spec: GET /_matrix/key/v2/server
    defineRoute({
      method: 'GET',
      prefixes: KEY_V2,
      path: '/server',
      auth: 'none',
      handler: () => keyStore.ownServerKeys(),
    }),
    // The deprecated per-key form, still requested by older servers: the same response.
    defineRoute({
      method: 'GET',
      prefixes: KEY_V2,
      path: '/server/:keyId',
      auth: 'none',
      handler: () => keyStore.ownServerKeys(),
    }),
    // Spec: GET /_matrix/key/v2/query/{serverName}
    defineRoute({
      method: 'GET',
      prefixes: KEY_V2,
      path: '/query/:serverName',
      auth: 'none',
      query: z.object({ minimum_valid_until_ts: timestamp.optional() }),
      handler: async ({ params, query }) => {
        const min = query.minimum_valid_until_ts ?? clock.now();
        return { server_keys: notarised(await keyStore.notaryKeys(params.serverName!, min)) };
      },
    }),
    // The deprecated per-key form, GET /_matrix/key/v2/query/{serverName}/{keyId}, still served by Synapse.
    defineRoute({
      method: 'GET',
      prefixes: KEY_V2,
      path: '/query/:serverName/:keyId',
      auth: 'none',
      query: z.object({ minimum_valid_until_ts: timestamp.optional() }),
      handler: async ({ params, query }) => {
        const min = query.minimum_valid_until_ts ?? clock.now();
        return { server_keys: notarised(await keyStore.notaryKeys(params.serverName!, min, [params.keyId!])) };
      },
    }),
    // Spec: POST /_matrix/key/v2/query
    defineRoute({
      method: 'POST',
      prefixes: KEY_V2,
      path: '/query',
      auth: 'none',
      body: z.object({
        server_keys: z.record(z.string(), z.record(z.string(), z.looseObject({ minimum_valid_until_ts: z.number().int().optional() }))),
      }),
      handler: async ({ body }) => {
        const servers = Object.entries(body.server_keys);
        if (servers.length > MAX_NOTARY_SERVERS) {
          throw new MatrixError('M_TOO_LARGE', `At most ${MAX_NOTARY_SERVERS} servers per query`, 400);
        }
        const now = clock.now();
        const results = await Promise.all(
          servers.map(([name, criteria]) => {
            const wanted = Object.values(criteria).map((c) => c.minimum_valid_until_ts ?? now);
            return keyStore.notaryKeys(name, Math.max(now, ...wanted), Object.keys(criteria));
          }),
        );
        return { server_keys: notarised(results.flat()) };
      },
    }),
    // Spec: GET /_matrix/federation/v1/version
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/version',
      auth: 'none',
      handler: () => ({ server: { name: SERVER_SOFTWARE_NAME, version: SERVER_VERSION } }),
    }),
    // Spec: GET /_matrix/federation/v1/query/profile
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/query/profile',
      auth: 'server',
      query: z.object({ user_id: z.string(), field: z.string().optional() }),
      handler: async ({ query }) => {
        if (serverNameOf(query.user_id) !== serverName || !query.user_id.startsWith('@')) {
          throw new MatrixError('M_INVALID_PARAM', 'User is not hosted on this server');
        }
        const profile = await getProfile(db.knex, query.user_id);
        if (!profile) throw notFound('Profile not found');
        const out: Record<string, string> = {};
        for (const field of ['displayname', 'avatar_url'] as const) {
          if (query.field !== undefined && query.field !== field) continue;
          // prototype-safe: field is displayname or avatar_url
          if (profile[field] !== null) out[field] = profile[field];
        }
        return out;
      },
    }),
  ];
}
