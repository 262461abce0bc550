import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Push Notifications" → GET /notifications.

const query = z.object({
  from: z.string().optional(),
  limit: z
    .string()
    .regex(/^[0-9]{1,9}$/, 'must be a non-negative integer')
    .optional(),
  only: z.string().optional(),
});

export function notificationRoutes(services: Services): RouteDefinition[] {
  return [
    // Spec: GET /_matrix/client/v3/notifications
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/notifications',
      auth: 'user',
      query,
      handler: async (ctx) => {
        const limit = Math.min(Math.max(ctx.query.limit !== undefined ? Number(ctx.query.limit) : 50, 1), 1000);
        return services.push.notificationsPage(
          { userId: ctx.requester.userId, deviceId: ctx.requester.deviceId },
          { from: ctx.query.from, limit, onlyHighlight: ctx.query.only === 'highlight' },
        );
      },
    }),
  ];
}
