import { z } from 'zod';
import { MatrixError, forbidden, notFound } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Client config" — account data, global and per room.

/** Types the server manages itself: clients set them through their own endpoints (405 M_BAD_JSON). */
const SERVER_MANAGED = new Set(['m.fully_read', 'm.push_rules']);

function checkWritable(type: string): void {
  if (SERVER_MANAGED.has(type)) throw new MatrixError('M_BAD_JSON', `Cannot set ${type} through this API.`, 405);
}

function checkRoomId(roomId: string): void {
  if (!/^![^:]+:.+$/.test(roomId)) throw new MatrixError('M_INVALID_PARAM', `${roomId} is not a valid room ID`);
}

export function accountDataRoutes(services: Services): RouteDefinition[] {
  const { accountData } = services.sync;
  return [
    // Spec: PUT /_matrix/client/v3/user/{userId}/account_data/{type}
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/user/:userId/account_data/:type',
      auth: 'user',
      body: z.looseObject({}),
      handler: async (ctx) => {
        if (ctx.params.userId !== ctx.requester.userId) throw forbidden('Cannot add account data for other users.');
        checkWritable(ctx.params.type!);
        await accountData.put(ctx.requester.userId, '', ctx.params.type!, ctx.body);
        return {};
      },
    }),
    // Spec: GET /_matrix/client/v3/user/{userId}/account_data/{type}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/user/:userId/account_data/:type',
      auth: 'user',
      handler: async (ctx) => {
        if (ctx.params.userId !== ctx.requester.userId) throw forbidden('Cannot get account data for other users.');
        const content = await accountData.get(ctx.requester.userId, '', ctx.params.type!);
        if (!content) throw notFound('Account data not found.');
        return content;
      },
    }),
    // Spec: PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/user/:userId/rooms/:roomId/account_data/:type',
      auth: 'user',
      body: z.looseObject({}),
      handler: async (ctx) => {
        if (ctx.params.userId !== ctx.requester.userId) throw forbidden('Cannot add account data for other users.');
        checkRoomId(ctx.params.roomId!);
        checkWritable(ctx.params.type!);
        await accountData.put(ctx.requester.userId, ctx.params.roomId!, ctx.params.type!, ctx.body);
        return {};
      },
    }),
    // Spec: GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/user/:userId/rooms/:roomId/account_data/:type',
      auth: 'user',
      handler: async (ctx) => {
        if (ctx.params.userId !== ctx.requester.userId) throw forbidden('Cannot get account data for other users.');
        checkRoomId(ctx.params.roomId!);
        const content = await accountData.get(ctx.requester.userId, ctx.params.roomId!, ctx.params.type!);
        if (!content) throw notFound('Account data not found.');
        return content;
      },
    }),
  ];
}
