import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V1, defineRoute, type RouteDefinition } from '../http/route.js';
import { SpaceHierarchy } from '../rooms/hierarchy.js';

const hierarchyQuery = z
  .object({
    suggested_only: z.enum(['true', 'false']).optional(),
    limit: z.string().regex(/^\d{1,9}$/, 'expected a positive integer').optional(),
    max_depth: z.string().regex(/^\d{1,9}$/, 'expected a non-negative integer').optional(),
    from: z.string().optional(),
  })
  .loose();

// Spec: Client-Server API, "Spaces".
export function hierarchyRoutes(services: Services): RouteDefinition[] {
  const spaces = new SpaceHierarchy({ db: services.db, rooms: services.rooms });
  return [
    // Spec: GET /_matrix/client/v1/rooms/{roomId}/hierarchy
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V1,
      path: '/rooms/:roomId/hierarchy',
      auth: 'user',
      allowGuests: true,
      query: hierarchyQuery,
      handler: ({ params, query, requester }) =>
        spaces.hierarchy({
          roomId: params.roomId!,
          userId: requester.userId,
          limit: query.limit !== undefined ? Number(query.limit) : undefined,
          maxDepth: query.max_depth !== undefined ? Number(query.max_depth) : undefined,
          suggestedOnly: query.suggested_only !== undefined ? query.suggested_only === 'true' : undefined,
          from: query.from,
        }),
    }),
  ];
}
