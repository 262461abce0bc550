import { z } from 'zod';
import { MatrixError, forbidden } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Room tagging": GET .../tags, PUT and DELETE .../tags/{tag}.

function checkOwn(userId: string | undefined, requester: string): void {
  if (userId !== requester) throw forbidden('Cannot access the tags of other users.');
}

function checkRoomId(roomId: string): void {
  if (!/^![^:]+:.+$/.test(roomId)) throw new MatrixError('M_INVALID_PARAM', `${roomId} is not a valid room ID`);
}

export function tagRoutes(services: Services): RouteDefinition[] {
  const { tags } = services.directory;
  return [
    // Spec: GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/user/:userId/rooms/:roomId/tags',
      auth: 'user',
      handler: async ({ params, requester }) => {
        checkOwn(params.userId, requester.userId);
        checkRoomId(params.roomId!);
        return { tags: await tags.get(requester.userId, params.roomId!) };
      },
    }),
    // Spec: PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/user/:userId/rooms/:roomId/tags/:tag',
      auth: 'user',
      // `order` is a number in [0, 1] (spec: "Tag"); other keys are kept as the client sent them.
      body: z.looseObject({ order: z.number().min(0).max(1).optional() }),
      handler: async ({ params, body, requester }) => {
        checkOwn(params.userId, requester.userId);
        checkRoomId(params.roomId!);
        const tag = params.tag!;
        if (tag === '' || Buffer.byteLength(tag, 'utf8') > 255) throw new MatrixError('M_INVALID_PARAM', 'Tag names are 1 to 255 bytes');
        await tags.set(requester.userId, params.roomId!, tag, body);
        return {};
      },
    }),
    // Spec: DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}
    defineRoute({
      method: 'DELETE',
      prefixes: CLIENT_V3,
      path: '/user/:userId/rooms/:roomId/tags/:tag',
      auth: 'user',
      handler: async ({ params, requester }) => {
        checkOwn(params.userId, requester.userId);
        checkRoomId(params.roomId!);
        await tags.remove(requester.userId, params.roomId!, params.tag!);
        return {};
      },
    }),
  ];
}
