import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

const eventId = z.string().startsWith('$', 'must be an event ID');

// Spec: Client-Server API, "Receipts" (POST /rooms/{roomId}/receipt/{receiptType}/{eventId}) and
// "Fully read markers" (POST /rooms/{roomId}/read_markers).
export function receiptRoutes(services: Services): RouteDefinition[] {
  const { receipts } = services.edus;
  return [
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/receipt/:receiptType/:eventId',
      auth: 'user',
      rateLimit: 'message',
      body: z.looseObject({ thread_id: z.unknown().optional() }),
      handler: async ({ params, body, requester }) => {
        await receipts.send(requester.userId, params.roomId!, params.receiptType!, params.eventId!, body.thread_id);
        return {};
      },
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/read_markers
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/read_markers',
      auth: 'user',
      rateLimit: 'message',
      body: z.looseObject({
        'm.fully_read': eventId.optional(),
        'm.read': eventId.optional(),
        'm.read.private': eventId.optional(),
      }),
      handler: async ({ params, body, requester }) => {
        await receipts.setReadMarkers(requester.userId, params.roomId!, {
          fullyRead: body['m.fully_read'],
          read: body['m.read'],
          readPrivate: body['m.read.private'],
        });
        return {};
      },
    }),
  ];
}
