import { z } from 'zod';
import { forbidden } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V1, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "POST /_matrix/client/v1/appservice/{appserviceId}/ping".
export function appservicePingRoutes(services: Services): RouteDefinition[] {
  return [
    // Spec: POST /_matrix/client/v1/appservice/{appserviceId}/ping
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V1,
      path: '/appservice/:appserviceId/ping',
      auth: 'user',
      body: z.object({ transaction_id: z.string().optional() }),
      handler: async ({ params, body, requester }) => {
        const reg = services.appservices.byId(params.appserviceId!);
        if (!reg || requester.appserviceId !== reg.id) throw forbidden('Only the application service itself may ping it');
        return services.appserviceClient.pinger.ping(reg, body.transaction_id);
      },
    }),
  ];
}
