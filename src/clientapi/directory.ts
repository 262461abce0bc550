import { z } from 'zod';
import { forbidden, notFound } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import * as asRoomList from '../storage/repositories/appserviceRoomList.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import { userPowerLevel } from '../rooms/authRules.js';

// Spec: Client-Server API, "Room aliases" and "Listing rooms".
export function directoryRoutes(services: Services): RouteDefinition[] {
  const { rooms, db } = services;
  return [
    // Spec: PUT /_matrix/client/v3/directory/room/{roomAlias}
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/directory/room/:roomAlias',
      auth: 'user',
      body: z.object({ room_id: z.string() }).loose(),
      handler: async ({ params, body, requester }) => {
        await rooms.createAlias(requester, params.roomAlias!, body.room_id);
        return {};
      },
    }),
    // Spec: Client-Server API, "Room aliases" — GET /_matrix/client/v3/directory/room/{roomAlias} (remote: asked over federation)
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/directory/room/:roomAlias',
      auth: 'none',
      handler: ({ params }) => rooms.resolveAlias(params.roomAlias!),
    }),
    // Spec: DELETE /_matrix/client/v3/directory/room/{roomAlias}
    defineRoute({
      method: 'DELETE',
      prefixes: CLIENT_V3,
      path: '/directory/room/:roomAlias',
      auth: 'user',
      handler: async ({ params, requester }) => {
        await rooms.deleteAlias(requester, params.roomAlias!, false);
        return {};
      },
    }),
    // Spec: GET /_matrix/client/v3/rooms/{roomId}/aliases
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/aliases',
      auth: 'user',
      handler: async ({ params, requester }) => ({ aliases: await rooms.roomAliases(requester, params.roomId!) }),
    }),
    // Spec: GET /_matrix/client/v3/directory/list/room/{roomId}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/directory/list/room/:roomId',
      auth: 'none',
      handler: async ({ params }) => {
        const room = await roomsRepo.getRoom(db.knex, params.roomId!);
        if (!room) throw notFound('Unknown room');
        return { visibility: room.isPublic ? 'public' : 'private' };
      },
    }),
    // Spec: PUT /_matrix/client/v3/directory/list/room/{roomId}
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/directory/list/room/:roomId',
      auth: 'user',
      body: z.object({ visibility: z.enum(['public', 'private']).default('public') }).loose(),
      handler: async ({ params, body, requester }) => {
        const roomId = params.roomId!;
        if (!(await roomsRepo.getRoom(db.knex, roomId))) throw notFound('Unknown room');
        const state = await rooms.reader.currentState(roomId);
        const version = await rooms.roomVersion(db.knex, roomId);
        const member = state.get(`m.room.member\u0000${requester.userId}`);
        if (member?.content.membership !== 'join' || userPowerLevel(state, requester.userId, version) < 50) {
          throw forbidden('You need to be a moderator of the room to publish it');
        }
        await roomsRepo.setRoomPublic(db.knex, roomId, body.visibility === 'public');
        return {};
      },
    }),
    // Spec: Application Service API, "Application service room directories":
    // PUT and DELETE /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}
    ...(['PUT', 'DELETE'] as const).map((method) =>
      defineRoute({
        method,
        prefixes: CLIENT_V3,
        path: '/directory/list/appservice/:networkId/:roomId',
        auth: 'user',
        body: z.object({ visibility: z.enum(['public', 'private']).optional() }).loose(),
        handler: async ({ params, body, requester }) => {
          if (requester.appserviceId === undefined) throw forbidden('Only application services can edit their room directories');
          const roomId = params.roomId!;
          if (!(await roomsRepo.getRoom(db.knex, roomId))) throw notFound('Unknown room');
          const visibility = method === 'DELETE' ? 'private' : (body?.visibility ?? 'public');
          if (visibility === 'public') await asRoomList.publishForNetwork(db.knex, requester.appserviceId, params.networkId!, roomId);
          else await asRoomList.unpublishForNetwork(db.knex, requester.appserviceId, params.networkId!, roomId);
          return {};
        },
      }),
    ),
  ];
}
