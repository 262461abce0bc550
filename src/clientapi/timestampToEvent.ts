import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V1, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event
export function timestampToEventRoutes(services: Services): RouteDefinition[] {
  const { search } = services;
  return [
    // Spec: GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V1,
      path: '/rooms/:roomId/timestamp_to_event',
      auth: 'user',
      query: z.object({ ts: z.coerce.number().int().min(0), dir: z.enum(['f', 'b']) }).loose(),
      handler: ({ params, query, requester }) => search.timestampToEvent(requester, params.roomId!, query.ts, query.dir),
    }),
  ];
}
