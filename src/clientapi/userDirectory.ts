import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "User directory": POST /user_directory/search.
export function userDirectoryRoutes(services: Services): RouteDefinition[] {
  const { userDirectory } = services.directory;
  return [
    // Spec: POST /_matrix/client/v3/user_directory/search
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/user_directory/search',
      auth: 'user',
      body: z.looseObject({ search_term: z.string().max(1000), limit: z.number().int().min(0).nullish() }),
      handler: ({ body, requester }) => userDirectory.search(requester.userId, body.search_term, body.limit ?? 10),
    }),
  ];
}
