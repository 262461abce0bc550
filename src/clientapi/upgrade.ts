import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { RoomUpgrades } from '../rooms/upgrade.js';

// Spec: Client-Server API, "Room Upgrades".
export function upgradeRoutes(services: Services): RouteDefinition[] {
  const upgrades = new RoomUpgrades(services, services.rooms);
  return [
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/upgrade
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/upgrade',
      auth: 'user',
      // additional_creators only means something from room version 12, which this server does not offer yet.
      body: z.object({ new_version: z.string(), additional_creators: z.array(z.string()).optional() }).loose(),
      rateLimit: 'message',
      handler: async ({ params, body, requester }) => ({
        replacement_room: await upgrades.upgrade({ userId: requester.userId, deviceId: requester.deviceId }, params.roomId!, body.new_version),
      }),
    }),
  ];
}
