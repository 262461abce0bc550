import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Push Notifications" → GET /pushers, POST /pushers/set.

const setBody = z.looseObject({
  pushkey: z.string(),
  kind: z.string().nullable(),
  app_id: z.string(),
  app_display_name: z.string().optional(),
  device_display_name: z.string().optional(),
  profile_tag: z.string().optional(),
  lang: z.string().optional(),
  data: z.looseObject({ url: z.string().optional(), format: z.string().optional() }).optional(),
  append: z.boolean().optional(),
});

export function pusherRoutes(services: Services): RouteDefinition[] {
  const { pushers } = services.push;
  return [
    // Spec: GET /_matrix/client/v3/pushers
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/pushers',
      auth: 'user',
      handler: async (ctx) => ({ pushers: await pushers.list(ctx.requester.userId) }),
    }),
    // Spec: POST /_matrix/client/v3/pushers/set
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/pushers/set',
      auth: 'user',
      body: setBody,
      handler: async (ctx) => {
        await pushers.set(ctx.requester.userId, ctx.requester.deviceId, ctx.body);
        return {};
      },
    }),
  ];
}
