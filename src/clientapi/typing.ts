import { z } from 'zod';
import { forbidden } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Typing Notifications" (PUT /rooms/{roomId}/typing/{userId}).
export function typingRoutes(services: Services): RouteDefinition[] {
  const { typing } = services.edus;
  return [
    // Spec: PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/typing/:userId',
      auth: 'user',
      body: z.looseObject({ typing: z.boolean(), timeout: z.number().int().min(0).optional() }),
      handler: async ({ params, body, requester }) => {
        if (params.userId !== requester.userId) throw forbidden('Cannot set typing status for other users.');
        await typing.setTyping(requester.userId, params.roomId!, body.typing, body.timeout);
        return {};
      },
    }),
  ];
}
