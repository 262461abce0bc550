import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

const booleanParam = z.enum(['true', 'false']).transform((v) => v === 'true');

const syncQuery = z.looseObject({
  since: z.string().optional(),
  filter: z.string().optional(),
  full_state: booleanParam.optional(),
  // Presence to set while syncing (online by default; offline leaves it alone).
  set_presence: z.enum(['offline', 'online', 'unavailable']).optional(),
  timeout: z
    .string()
    .regex(/^\d{1,10}$/, 'must be a non-negative integer')
    .transform(Number)
    .optional(),
  // MSC4222 / use_state_after: accepted and ignored (the response uses `state`).
  use_state_after: booleanParam.optional(),
});

// Spec: Client-Server API, "GET /_matrix/client/v3/sync".
export function syncRoutes(services: Services): RouteDefinition[] {
  return [
    // Spec: GET /_matrix/client/v3/sync
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/sync',
      auth: 'user',
      allowGuests: true,
      query: syncQuery,
      handler: (ctx) => {
        services.metrics.sync.requested(!ctx.query.since ? 'initial_sync' : ctx.query.full_state ? 'full_state_sync' : 'incremental_sync');
        return services.edus.presence.duringSync(ctx.requester.userId, ctx.query.set_presence, () =>
          services.sync.sync({
            userId: ctx.requester.userId,
            deviceId: ctx.requester.deviceId,
            since: ctx.query.since,
            timeoutMs: ctx.query.timeout,
            filter: ctx.query.filter,
            fullState: ctx.query.full_state,
          }),
        );
      },
    }),
  ];
}
