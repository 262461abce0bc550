import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import { sessionResponse } from './login.js';

const SYNAPSE_ADMIN_V1 = ['/_synapse/admin/v1'] as const;

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
  ];
}
