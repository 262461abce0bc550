import { z } from 'zod';
import { MatrixError } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RequestContext, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Published room directory": GET and POST /publicRooms.

const getQuery = z.looseObject({
  limit: z.coerce.number().int().min(0).optional(),
  since: z.string().optional(),
  server: z.string().optional(),
});

const postBody = z.looseObject({
  limit: z.number().int().min(0).nullish(),
  since: z.string().nullish(),
  filter: z
    .looseObject({
      generic_search_term: z.string().nullish(),
      room_types: z.array(z.string().nullable()).nullish(),
    })
    .nullish(),
  include_all_networks: z.boolean().nullish(),
  third_party_instance_id: z.string().nullish(),
});

export function publicRoomsRoutes(services: Services): RouteDefinition[] {
  const { publicRooms } = services.directory;
  // Spec: the listing needs an access token unless the server allows anyone to browse it.
  const checkAccess = (ctx: RequestContext<unknown, unknown>) => {
    if (!ctx.requester && !services.config.allow_public_rooms_without_auth) {
      throw new MatrixError('M_MISSING_TOKEN', 'Missing access token', 401);
    }
  };
  const serverParam = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
  return [
    // Spec: GET /_matrix/client/v3/publicRooms
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/publicRooms',
      auth: 'optional',
      allowGuests: true,
      query: getQuery,
      handler: (ctx) => {
        checkAccess(ctx);
        return publicRooms.list({ limit: ctx.query.limit, since: ctx.query.since }, serverParam(ctx.query.server));
      },
    }),
    // Spec: POST /_matrix/client/v3/publicRooms
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/publicRooms',
      auth: 'optional',
      allowGuests: true,
      body: postBody,
      handler: (ctx) => {
        checkAccess(ctx);
        const { body } = ctx;
        return publicRooms.list(
          {
            limit: body.limit ?? undefined,
            since: body.since ?? undefined,
            filter: body.filter
              ? { generic_search_term: body.filter.generic_search_term ?? undefined, room_types: body.filter.room_types ?? undefined }
              : undefined,
            include_all_networks: body.include_all_networks ?? undefined,
            third_party_instance_id: body.third_party_instance_id ?? undefined,
          },
          serverParam(ctx.query.server),
        );
      },
    }),
  ];
}
