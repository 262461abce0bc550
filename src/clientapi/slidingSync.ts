import type { Services } from '../homeserver.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import { slidingSyncBody, slidingSyncQuery } from '../sync/sliding/request.js';

const SIMPLIFIED_MSC3575 = ['/_matrix/client/unstable/org.matrix.simplified_msc3575'] as const;

export function slidingSyncRoutes(services: Services): RouteDefinition[] {
  return [
    // MSC4186 Simplified Sliding Sync: POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync
    defineRoute({
      method: 'POST',
      prefixes: SIMPLIFIED_MSC3575,
      path: '/sync',
      auth: 'user',
      allowGuests: true,
      query: slidingSyncQuery,
      body: slidingSyncBody,
      handler: (ctx) =>
        services.edus.presence.duringSync(ctx.requester.userId, undefined, () =>
          services.slidingSync.sync({
            userId: ctx.requester.userId,
            deviceId: ctx.requester.deviceId,
            pos: ctx.query.pos,
            timeoutMs: ctx.query.timeout,
            body: ctx.body,
          }),
        ),
    }),
  ];
}
