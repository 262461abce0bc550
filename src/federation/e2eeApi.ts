/**
 * The serving side of E2EE over federation (spec: Server-Server API, "End-to-End Encryption" and "Device
 * Management"): POST /user/keys/query, POST /user/keys/claim and GET /user/devices/{userId}, for local
 * users only. Claims follow the same rules as local ones (one-time keys oldest first, then the fallback key).
 */
import { z } from 'zod';
import type { DeviceKeysService } from '../e2ee/deviceKeysService.js';
import { MatrixError } from '../errors.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import type { LocalDeviceLists } from './edus/deviceListOutbound.js';
import { serverNameOf } from './serverName.js';

export const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;

/** At most this many users per query or claim (Synapse has no limit; a bound keeps one request cheap). */
const MAX_USERS = 1_000;

export interface E2eeApiDeps {
  serverName: string;
  deviceKeys: Pick<DeviceKeysService, 'queryLocal' | 'claimLocal'>;
  localDeviceLists: Pick<LocalDeviceLists, 'userDevices'>;
}

const tooMany = () => new MatrixError('M_TOO_LARGE', `At most ${MAX_USERS} users per request`, 400);

export function e2eeApiRoutes(deps: E2eeApiDeps): RouteDefinition[] {
  const isLocal = (userId: string) => userId.startsWith('@') && serverNameOf(userId) === deps.serverName;
  return [
    // Spec: POST /_matrix/federation/v1/user/keys/query
    defineRoute({
      method: 'POST',
      prefixes: FEDERATION_V1,
      path: '/user/keys/query',
      auth: 'server',
      body: z.object({ device_keys: z.record(z.string(), z.array(z.string())) }).loose(),
      handler: async ({ body }) => {
        const wanted = Object.entries(body.device_keys).filter(([u]) => isLocal(u));
        if (wanted.length > MAX_USERS) throw tooMany();
        const res = await deps.deviceKeys.queryLocal(undefined, Object.fromEntries(wanted));
        return { device_keys: res.device_keys, master_keys: res.master_keys, self_signing_keys: res.self_signing_keys };
      },
    }),
    // Spec: POST /_matrix/federation/v1/user/keys/claim
    defineRoute({
      method: 'POST',
      prefixes: FEDERATION_V1,
      path: '/user/keys/claim',
      auth: 'server',
      body: z.object({ one_time_keys: z.record(z.string(), z.record(z.string(), z.string())) }).loose(),
      handler: async ({ body }) => {
        const wanted = Object.entries(body.one_time_keys).filter(([u]) => isLocal(u));
        if (wanted.length > MAX_USERS) throw tooMany();
        return { one_time_keys: await deps.deviceKeys.claimLocal(Object.fromEntries(wanted)) };
      },
    }),
    // Spec: GET /_matrix/federation/v1/user/devices/{userId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/user/devices/:userId',
      auth: 'server',
      handler: ({ params }) => {
        const userId = params.userId!;
        if (!isLocal(userId)) throw new MatrixError('M_INVALID_PARAM', 'User is not hosted on this server');
        return deps.localDeviceLists.userDevices(userId);
      },
    }),
  ];
}
