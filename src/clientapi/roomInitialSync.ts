import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { roomSnapshot } from '../sync/roomSnapshot.js';

export function roomInitialSyncRoutes(services: Services): RouteDefinition[] {
  const deps = { db: services.db, reader: services.rooms.reader, presence: services.edus.presence };
  return [
    // Spec: GET /_matrix/client/v3/rooms/{roomId}/initialSync ("Room Previews": peeking into world-readable rooms)
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/initialSync',
      auth: 'user',
      allowGuests: true,
      query: z.object({ limit: z.coerce.number().int().min(0).default(10) }).loose(),
      handler: ({ params, query, requester }) => roomSnapshot(deps, requester, params.roomId!, query.limit),
    }),
  ];
}
