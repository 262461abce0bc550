import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { roomEventFilterSchema } from '../sync/filter.js';

const roomEvents = z
  .object({
    search_term: z.string(),
    keys: z.array(z.enum(['content.body', 'content.name', 'content.topic'])).optional(),
    filter: roomEventFilterSchema.optional(),
    order_by: z.enum(['recent', 'rank']).optional(),
    event_context: z
      .object({
        before_limit: z.number().int().min(0).optional(),
        after_limit: z.number().int().min(0).optional(),
        include_profile: z.boolean().optional(),
      })
      .loose()
      .optional(),
    include_state: z.boolean().optional(),
    groupings: z
      .object({ group_by: z.array(z.object({ key: z.enum(['room_id', 'sender']).optional() }).loose()).optional() })
      .loose()
      .optional(),
  })
  .loose();

// Spec: Client-Server API, "Server Side Search" — POST /search (category room_events).
export function searchRoutes(services: Services): RouteDefinition[] {
  const { search } = services;
  return [
    // Spec: POST /_matrix/client/v3/search
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/search',
      auth: 'user',
      body: z.object({ search_categories: z.object({ room_events: roomEvents.optional() }).loose() }).loose(),
      query: z.object({ next_batch: z.string().optional() }).loose(),
      handler: async ({ body, query, requester }) => {
        const criteria = body.search_categories.room_events;
        if (!criteria) return { search_categories: {} };
        return { search_categories: { room_events: await search.searchRoomEvents(requester, criteria, query.next_batch) } };
      },
    }),
  ];
}
