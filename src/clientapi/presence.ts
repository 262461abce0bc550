import { z } from 'zod';
import { forbidden } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Presence" (PUT/GET /presence/{userId}/status).
export function presenceRoutes(services: Services): RouteDefinition[] {
  const { presence } = services.edus;
  return [
    // Spec: PUT /_matrix/client/v3/presence/{userId}/status
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/presence/:userId/status',
      auth: 'user',
      rateLimit: 'message',
      body: z.looseObject({
        presence: z.enum(['online', 'unavailable', 'offline']),
        status_msg: z.string().max(1024).nullable().optional(),
      }),
      handler: async ({ params, body, requester }) => {
        if (params.userId !== requester.userId) throw forbidden('Can only set your own presence state.');
        await presence.setPresence(requester.userId, body.presence, body.status_msg ?? undefined);
        return {};
      },
    }),
    // Spec: GET /_matrix/client/v3/presence/{userId}/status
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/presence/:userId/status',
      auth: 'user',
      allowGuests: true,
      handler: ({ params, requester }) => presence.getPresence(requester.userId, params.userId!),
    }),
  ];
}
