import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { roomVersionCapabilities } from '../rooms/roomVersions.js';

export function capabilityRoutes(services: Services): RouteDefinition[] {
  const { config } = services;
  return [
    // Spec: Client-Server API, "Capabilities negotiation" → "GET /_matrix/client/v3/capabilities"
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/capabilities',
      auth: 'user',
      allowGuests: true,
      handler: () => ({
        capabilities: {
          'm.change_password': { enabled: config.password_config.enabled },
          'm.room_versions': { default: config.default_room_version, available: roomVersionCapabilities() },
          'm.set_displayname': { enabled: true },
          'm.set_avatar_url': { enabled: true },
          'm.3pid_changes': { enabled: false },
          'm.get_login_token': { enabled: services.config.login_via_existing_session.enabled },
        },
      }),
    }),
  ];
}
