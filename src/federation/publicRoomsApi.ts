/**
 * The room directory over federation (spec: Server-Server API, "Public Room Directory"):
 * GET and POST /_matrix/federation/v1/publicRooms answer from the local directory; `remoteDirectory`
 * is what the client API's `server=` parameter uses to list another server's directory.
 */
import { z } from 'zod';
import { MatrixError } from '../errors.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import type { PublicRoomsPage, PublicRoomsQuery, PublicRoomsService, RemoteRoomDirectory } from '../directory/publicRooms.js';
import { FederationRequestError, type FederationClient } from './client.js';

export const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;

const getQuery = z.looseObject({
  limit: z.coerce.number().int().min(0).optional(),
  since: z.string().optional(),
  include_all_networks: z.enum(['true', 'false']).optional(),
  third_party_instance_id: z.string().optional(),
});

const postBody = z.looseObject({
  limit: z.number().int().min(0).nullish(),
  since: z.string().nullish(),
  filter: z.looseObject({ generic_search_term: z.string().nullish(), room_types: z.array(z.string().nullable()).nullish() }).nullish(),
  include_all_networks: z.boolean().nullish(),
  third_party_instance_id: z.string().nullish(),
});

export function publicRoomsApiRoutes(directory: Pick<PublicRoomsService, 'list'>): RouteDefinition[] {
  return [
    // Spec: GET /_matrix/federation/v1/publicRooms
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/publicRooms',
      auth: 'server',
      query: getQuery,
      handler: ({ query }) =>
        directory.list({
          limit: query.limit,
          since: query.since,
          include_all_networks: query.include_all_networks === 'true',
          third_party_instance_id: query.third_party_instance_id,
        }),
    }),
    // Spec: POST /_matrix/federation/v1/publicRooms
    defineRoute({
      method: 'POST',
      prefixes: FEDERATION_V1,
      path: '/publicRooms',
      auth: 'server',
      body: postBody,
      handler: ({ body }) =>
        directory.list({
          limit: body.limit ?? undefined,
          since: body.since ?? undefined,
          filter: body.filter
            ? { generic_search_term: body.filter.generic_search_term ?? undefined, room_types: body.filter.room_types ?? undefined }
            : undefined,
          include_all_networks: body.include_all_networks ?? undefined,
          third_party_instance_id: body.third_party_instance_id ?? undefined,
        }),
    }),
  ];
}

/** Lists another server's directory: POST when there is a filter, GET otherwise. */
export function remoteDirectory(client: Pick<FederationClient, 'request'>): RemoteRoomDirectory {
  return async (server: string, query: PublicRoomsQuery): Promise<PublicRoomsPage> => {
    try {
      const res = query.filter
        ? await client.request<PublicRoomsPage>({
            destination: server,
            method: 'POST',
            path: '/_matrix/federation/v1/publicRooms',
            body: {
              ...(query.limit !== undefined ? { limit: query.limit } : {}),
              ...(query.since !== undefined ? { since: query.since } : {}),
              filter: query.filter,
              ...(query.include_all_networks !== undefined ? { include_all_networks: query.include_all_networks } : {}),
              ...(query.third_party_instance_id !== undefined ? { third_party_instance_id: query.third_party_instance_id } : {}),
            },
          })
        : await client.request<PublicRoomsPage>({
            destination: server,
            method: 'GET',
            path: '/_matrix/federation/v1/publicRooms',
            query: {
              ...(query.limit !== undefined ? { limit: String(query.limit) } : {}),
              ...(query.since !== undefined ? { since: query.since } : {}),
              ...(query.include_all_networks !== undefined ? { include_all_networks: String(query.include_all_networks) } : {}),
              ...(query.third_party_instance_id !== undefined ? { third_party_instance_id: query.third_party_instance_id } : {}),
            },
          });
      return {
        chunk: Array.isArray(res?.chunk) ? res.chunk : [],
        total_room_count_estimate: typeof res?.total_room_count_estimate === 'number' ? res.total_room_count_estimate : 0,
        ...(typeof res?.next_batch === 'string' ? { next_batch: res.next_batch } : {}),
        ...(typeof res?.prev_batch === 'string' ? { prev_batch: res.prev_batch } : {}),
      };
    } catch (err) {
      // A remote server's error is not relayed verbatim to clients. A server that cannot be reached, or
      // refuses, has no directory for us (404, as without federation); a failing one is a bad gateway.
      if (err instanceof FederationRequestError && err.remoteStatus !== undefined && err.remoteStatus >= 500) {
        throw new MatrixError('M_UNKNOWN', `Could not list the room directory of ${server}`, 502);
      }
      throw new MatrixError('M_NOT_FOUND', `Cannot list the room directory of ${server}`, 404);
    }
  };
}
