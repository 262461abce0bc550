import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { knock } from '../rooms/knock.js';

// Spec: Client-Server API, "Knocking on rooms".
export function knockRoutes(services: Services): RouteDefinition[] {
  return [
    // Spec: POST /_matrix/client/v3/knock/{roomIdOrAlias} (`via` / `server_name` only matter for remote rooms)
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/knock/:roomIdOrAlias',
      auth: 'user',
      body: z.object({ reason: z.string().optional() }).loose(),
      query: z.looseObject({ server_name: z.union([z.string(), z.array(z.string())]).optional(), via: z.union([z.string(), z.array(z.string())]).optional() }),
      rateLimit: 'message',
      handler: async ({ params, body, query, requester }) => {
        const via = [query.via ?? [], query.server_name ?? []].flat();
        return { room_id: await knock(services, { userId: requester.userId, deviceId: requester.deviceId }, params.roomIdOrAlias!, body.reason, via) };
      },
    }),
  ];
}
