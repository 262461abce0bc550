import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V1, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Threading" — GET /rooms/{roomId}/threads.
export function threadRoutes(services: Services): RouteDefinition[] {
  const { relations } = services;
  return [
    // Spec: GET /_matrix/client/v1/rooms/{roomId}/threads
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V1,
      path: '/rooms/:roomId/threads',
      auth: 'user',
      query: z
        .object({
          include: z.enum(['all', 'participated']).default('all'),
          from: z.string().optional(),
          limit: z.coerce.number().int().min(1).optional(),
        })
        .loose(),
      handler: ({ params, query, requester }) =>
        relations.threads(requester, params.roomId!, { include: query.include, from: query.from, limit: query.limit }),
    }),
  ];
}
