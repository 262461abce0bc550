import type { Services } from '../../homeserver.js';
import { defineRoute, type RouteDefinition } from '../../http/route.js';
import { SERVER_VERSION } from '../../federation/version.js';
import { requireAdmin, SYNAPSE_ADMIN_V1 } from './common.js';

// Synapse admin API: "Server Version" and "Background Updates" (Skjól migrates at start-up: none run later).
export function adminServerRoutes(services: Services): RouteDefinition[] {
  return [
    // Synapse admin API: "Server Version" (no token needed, as Synapse)
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/server_version',
      auth: 'none',
      handler: () => ({ server_version: SERVER_VERSION }),
    }),
    // Synapse admin API: "Background Updates", status
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/background_updates/status',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        return { enabled: true, current_updates: {} };
      },
    }),
  ];
}
