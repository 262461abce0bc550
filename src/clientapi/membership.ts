import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import type { CreateRoomRequest } from '../rooms/roomCreation.js';

const reasonBody = z.object({ reason: z.string().optional() }).loose();
const stringOrList = z.union([z.string(), z.array(z.string())]).optional();
const viaQuery = z.object({ via: stringOrList, server_name: stringOrList }).loose();
const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const targetBody = z.object({ user_id: z.string(), reason: z.string().optional() }).loose();

const createRoomBody = z
  .object({
    visibility: z.enum(['public', 'private']).optional(),
    room_alias_name: z.string().optional(),
    name: z.string().optional(),
    topic: z.string().optional(),
    invite: z.array(z.string()).optional(),
    invite_3pid: z.array(z.unknown()).optional(),
    room_version: z.string().optional(),
    creation_content: z.record(z.string(), z.unknown()).optional(),
    initial_state: z
      .array(z.object({ type: z.string(), state_key: z.string().optional(), content: z.record(z.string(), z.unknown()) }).loose())
      .optional(),
    preset: z.enum(['private_chat', 'public_chat', 'trusted_private_chat']).optional(),
    is_direct: z.boolean().optional(),
    power_level_content_override: z.record(z.string(), z.unknown()).optional(),
  })
  .loose();

// Spec: Client-Server API, "Room membership" and "Creation".
export function membershipRoutes(services: Services): RouteDefinition[] {
  const { rooms } = services;
  const actorOf = (r: { userId: string; deviceId: string | undefined; isGuest?: boolean }) => ({ userId: r.userId, deviceId: r.deviceId, isGuest: r.isGuest });
  return [
    // Spec: POST /_matrix/client/v3/createRoom
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/createRoom',
      auth: 'user',
      body: createRoomBody,
      rateLimit: 'message',
      handler: async ({ body, requester }) => {
        const { roomId, alias } = await rooms.createRoom(actorOf(requester), body as CreateRoomRequest);
        return alias ? { room_id: roomId, room_alias: alias } : { room_id: roomId };
      },
    }),
    // Spec: POST /_matrix/client/v3/join/{roomIdOrAlias} (`via`, deprecated `server_name`: servers to join through)
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/join/:roomIdOrAlias',
      auth: 'user',
      allowGuests: true,
      body: reasonBody,
      query: viaQuery,
      rateLimit: 'message',
      handler: async ({ params, body, query, requester }) => ({
        room_id: await rooms.join(actorOf(requester), params.roomIdOrAlias!, body.reason, [...list(query.via), ...list(query.server_name)], body),
      }),
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/join
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/join',
      auth: 'user',
      allowGuests: true,
      body: reasonBody,
      rateLimit: 'message',
      handler: async ({ params, body, requester }) => ({ room_id: await rooms.join(actorOf(requester), params.roomId!, body.reason, [], body) }),
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/invite
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/invite',
      auth: 'user',
      body: targetBody,
      rateLimit: 'message',
      handler: async ({ params, body, requester }) => {
        await rooms.invite(actorOf(requester), params.roomId!, body.user_id, body.reason);
        return {};
      },
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/leave
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/leave',
      auth: 'user',
      allowGuests: true,
      body: reasonBody,
      handler: async ({ params, body, requester }) => {
        await rooms.setMembership(actorOf(requester), params.roomId!, requester.userId, 'leave', body.reason);
        return {};
      },
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/kick
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/kick',
      auth: 'user',
      body: targetBody,
      handler: async ({ params, body, requester }) => {
        await rooms.setMembership(actorOf(requester), params.roomId!, body.user_id, 'leave', body.reason, 'kick');
        return {};
      },
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/ban
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/ban',
      auth: 'user',
      body: targetBody,
      handler: async ({ params, body, requester }) => {
        await rooms.setMembership(actorOf(requester), params.roomId!, body.user_id, 'ban', body.reason);
        return {};
      },
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/unban
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/unban',
      auth: 'user',
      body: targetBody,
      handler: async ({ params, body, requester }) => {
        await rooms.setMembership(actorOf(requester), params.roomId!, body.user_id, 'leave', body.reason, 'unban');
        return {};
      },
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/forget
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/forget',
      auth: 'user',
      handler: async ({ params, requester }) => {
        await rooms.forget(actorOf(requester), params.roomId!);
        return {};
      },
    }),
    // Spec: GET /_matrix/client/v3/joined_rooms
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/joined_rooms',
      auth: 'user',
      handler: async ({ requester }) => ({ joined_rooms: await rooms.joinedRooms(requester.userId) }),
    }),
  ];
}
