import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, CLIENT_V3_ONLY, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Reporting content".

const reason = z.string().max(10_000);

export function reportingRoutes(services: Services): RouteDefinition[] {
  const { reports } = services.directory;
  return [
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}. `score` was removed in v1.18; an
    // older client's score in the old range (-100 … 0) is kept, anything else is ignored.
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/report/:eventId',
      auth: 'user',
      body: z.looseObject({ reason: reason.nullish(), score: z.unknown().optional() }),
      handler: async ({ params, body, requester }) => {
        const score = typeof body.score === 'number' && Number.isInteger(body.score) && body.score >= -100 && body.score <= 0 ? body.score : undefined;
        await reports.reportEvent(requester.userId, params.roomId!, params.eventId!, body.reason ?? undefined, score);
        return {};
      },
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/report (v1.13)
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3_ONLY,
      path: '/rooms/:roomId/report',
      auth: 'user',
      body: z.looseObject({ reason }),
      handler: async ({ params, body, requester }) => {
        await reports.reportRoom(requester.userId, params.roomId!, body.reason);
        return {};
      },
    }),
    // Spec: POST /_matrix/client/v3/users/{userId}/report (v1.14)
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3_ONLY,
      path: '/users/:userId/report',
      auth: 'user',
      body: z.looseObject({ reason }),
      handler: async ({ params, body, requester }) => {
        await reports.reportUser(requester.userId, params.userId!, body.reason);
        return {};
      },
    }),
  ];
}
