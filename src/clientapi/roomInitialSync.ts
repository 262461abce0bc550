import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { globalInitialSync } from '../sync/globalInitialSync.js';
import { roomSnapshot } from '../sync/roomSnapshot.js';

const limitParam = z
  .string()
  .regex(/^\d{1,10}$/, 'limit must be a non-negative integer')
  .transform(Number)
  .default(10);

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
    // Spec: GET /_matrix/client/v3/initialSync (deprecated; the whole account at once, as Synapse answers it)
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/initialSync',
      auth: 'user',
      query: z.looseObject({ limit: limitParam, archived: z.enum(['true', 'false']).optional() }),
      // Asking for everything is a sign of life, as a /sync is: the user shows online (and sees so).
      handler: ({ query, requester }) =>
        services.edus.presence.duringSync(requester.userId, undefined, () =>
          globalInitialSync({ db: services.db, rooms: services.rooms, presence: services.edus.presence, sync: services.sync }, requester, {
            limit: query.limit,
            archived: query.archived === 'true',
          }),
        ),
    }),
  ];
}
