import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

// MSC2753 peeking via /sync (as Dendrite serves it; SyTest's tests/31sync/17peeking.pl). The request bodies
// carry nothing yet: any JSON object is accepted.
export function peekRoutes(services: Services): RouteDefinition[] {
  const viewer = (requester: { userId: string; deviceId?: string | undefined }) => ({ userId: requester.userId, deviceId: requester.deviceId });
  return [
    // MSC2753: POST /_matrix/client/v3/peek/{roomIdOrAlias} (the device gets the room in /sync under rooms.peek)
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/peek/:roomIdOrAlias',
      auth: 'user',
      allowGuests: true,
      body: z.looseObject({}),
      handler: async ({ params, requester }) => ({ room_id: await services.sync.peeks.peek(viewer(requester), params.roomIdOrAlias!) }),
    }),
    // MSC2753: POST /_matrix/client/v3/rooms/{roomId}/unpeek (the device stops getting the room)
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/unpeek',
      auth: 'user',
      allowGuests: true,
      body: z.looseObject({}),
      handler: async ({ params, requester }) => {
        await services.sync.peeks.unpeek(viewer(requester), params.roomId!);
        return {};
      },
    }),
  ];
}
