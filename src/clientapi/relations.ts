import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V1, defineRoute, type RouteDefinition } from '../http/route.js';

const booleanParam = z.enum(['true', 'false']).transform((v) => v === 'true');

// Spec: Client-Server API, "Relationships" — GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]].
export function relationRoutes(services: Services): RouteDefinition[] {
  const { relations } = services;
  return [
    // Spec: GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V1,
      path: '/rooms/:roomId/relations/:eventId{/:relType}{/:eventType}',
      auth: 'user',
      query: z
        .object({
          from: z.string().optional(),
          to: z.string().optional(),
          limit: z.coerce.number().int().min(1).optional(),
          dir: z.enum(['b', 'f']).default('b'),
          recurse: booleanParam.optional(),
        })
        .loose(),
      handler: ({ params, query, requester }) =>
        relations.relations(requester, params.roomId!, params.eventId!, {
          relType: params.relType,
          eventType: params.eventType,
          from: query.from,
          to: query.to,
          limit: query.limit,
          dir: query.dir,
          recurse: query.recurse,
        }),
    }),
  ];
}
