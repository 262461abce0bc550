import { z } from 'zod';
import { MatrixError, notFound } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { toLegacyClientEvent } from '../rooms/clientEvent.js';
import { roomIdOfEvent } from '../rooms/eventFormat.js';
import { LegacyEventStream } from '../sync/eventStream.js';

const count = (name: string) =>
  z
    .string()
    .regex(/^\d{1,10}$/, `${name} must be a non-negative integer`)
    .transform(Number);

const eventsQuery = z.looseObject({
  from: z.string().optional(),
  // Synapse waits 30 seconds when no timeout is given.
  timeout: count('timeout').default(30_000),
  limit: count('limit').default(10),
  room_id: z.string().optional(),
});

// Spec: Client-Server API, legacy (deprecated) endpoints "GET /events" and "GET /events/{eventId}".
export function eventStreamRoutes(services: Services): RouteDefinition[] {
  const stream = new LegacyEventStream(services);
  return [
    // Spec: GET /_matrix/client/v3/events (deprecated; the tokens are /sync tokens)
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/events',
      auth: 'user',
      allowGuests: true,
      query: eventsQuery,
      handler: ({ query, requester }) => {
        // A guest reads only the rooms it peeks into, one at a time (as Synapse).
        if (requester.isGuest && query.room_id === undefined) throw new MatrixError('M_MISSING_PARAM', 'Guest users must specify room_id param');
        const run = () =>
          stream.stream({
            userId: requester.userId,
            deviceId: requester.deviceId,
            from: query.from,
            timeoutMs: query.timeout,
            limit: query.limit,
            roomId: query.room_id,
          });
        // Listening on the stream is a sign of life, as a /sync is; a guest's is not.
        return requester.isGuest ? run() : services.edus.presence.duringSync(requester.userId, undefined, run);
      },
    }),
    // Spec: GET /_matrix/client/v3/events/{eventId} (deprecated)
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/events/:eventId',
      auth: 'user',
      allowGuests: true,
      handler: async ({ params, requester }) => {
        const ev = await services.rooms.events.get(services.db.knex, params.eventId!);
        const roomId = ev ? roomIdOfEvent(ev.pdu, ev.eventId) : undefined;
        if (!roomId) throw notFound('Event not found');
        return toLegacyClientEvent(await services.rooms.reader.getEvent(requester, roomId, params.eventId!));
      },
    }),
  ];
}
