import { z } from 'zod';
import { forbidden, invalidParam } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { dict } from '../util/dict.js';
import { SYNAPSE_ADMIN_V1 } from './admin/common.js';
import { sessionResponse } from './login.js';

export function adminRoutes(services: Services): RouteDefinition[] {
  const { users } = services;
  return [
    // Synapse Admin API, "Shared-Secret Registration": fetch a single-use nonce
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/register',
      auth: 'none',
      handler: async () => ({ nonce: await users.sharedSecret.nonce() }),
    }),
    // Synapse Admin API, "Shared-Secret Registration": register with an HMAC of the nonce and credentials
    defineRoute({
      method: 'POST',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/register',
      auth: 'none',
      body: z.looseObject({}),
      rateLimit: 'registration',
      handler: async ({ body }) => {
        const registered = await users.sharedSecret.register(body);
        return sessionResponse(registered.userId, services.serverName, registered.session);
      },
    }),
    // Spec: GET /_matrix/client/v3/admin/whois/{userId} (the user themselves or a server admin, as Synapse)
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/admin/whois/:userId',
      auth: 'user',
      handler: async ({ params, requester }) => {
        const userId = params.userId!;
        if (userId !== requester.userId && !(await users.isAdmin(requester.userId))) throw forbidden('You are not a server admin');
        if (!users.isLocalUserId(userId)) throw invalidParam('Only local users can be looked up');
        return whoisResponse(services, userId);
      },
    }),
  ];
}

/** The whois answer (spec "GET /admin/whois" and Synapse's admin `v1/whois`): one session per device. */
export async function whoisResponse(services: Services, userId: string): Promise<Record<string, unknown>> {
  const devices = dict<{ sessions: Array<{ connections: Array<{ ip: string; last_seen: number; user_agent: string }> }> }>();
  for (const d of await services.users.listDevices(userId)) {
    const seen = d.lastSeenTs !== null && d.lastSeenIp !== null;
    devices[d.deviceId] = {
      sessions: [{ connections: seen ? [{ ip: d.lastSeenIp!, last_seen: d.lastSeenTs!, user_agent: d.lastSeenUserAgent ?? '' }] : [] }],
    };
  }
  return { user_id: userId, devices };
}
