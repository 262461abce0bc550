import { z } from 'zod';
import { forbidden, notFound } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Filtering" — POST/GET /user/{userId}/filter.
export function filterRoutes(services: Services): RouteDefinition[] {
  return [
    // Spec: POST /_matrix/client/v3/user/{userId}/filter
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/user/:userId/filter',
      auth: 'user',
      body: z.looseObject({}),
      handler: async (ctx) => {
        if (ctx.params.userId !== ctx.requester.userId) throw forbidden('Cannot create filters for other users');
        return { filter_id: await services.sync.filters.create(ctx.requester.userId, ctx.body) };
      },
    }),
    // Spec: GET /_matrix/client/v3/user/{userId}/filter/{filterId}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/user/:userId/filter/:filterId',
      auth: 'user',
      handler: async (ctx) => {
        if (ctx.params.userId !== ctx.requester.userId) throw forbidden('Cannot get filters for other users');
        const filter = await services.sync.filters.getRaw(ctx.requester.userId, ctx.params.filterId!);
        if (!filter) throw notFound('No such filter');
        return filter;
      },
    }),
  ];
}
