import { forbidden } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { turnCredentials } from '../directory/turn.js';

// Spec: Client-Server API, "Voice over IP": GET /_matrix/client/v3/voip/turnServer.
export function voipRoutes(services: Services): RouteDefinition[] {
  const { config, clock } = services;
  return [
    // Spec: GET /_matrix/client/v3/voip/turnServer
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/voip/turnServer',
      auth: 'user',
      allowGuests: true,
      handler: ({ requester }) => {
        if (requester.isGuest && !config.turn_allow_guests) throw forbidden('Guests may not use the TURN server');
        return turnCredentials(config, requester.userId, clock.now());
      },
    }),
  ];
}
