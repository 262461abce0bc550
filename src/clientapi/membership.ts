import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { MatrixError } from '../errors.js';
import { signedBlock, threepidInvite } from '../identity/thirdPartyInvites.js';
import type { CreateRoomRequest } from '../rooms/roomCreation.js';

const reasonBody = z.object({ reason: z.string().optional() }).loose();
// Spec: "POST /join": third_party_signed redeems a third-party invite (its `sender` is the inviter).
const joinBody = z.looseObject({ reason: z.string().optional(), third_party_signed: signedBlock.extend({ sender: z.string().max(255) }).optional() });
// Spec: "POST /rooms/{roomId}/invite" takes a user id, or a third-party identifier with its identity server.
const inviteBody = z.looseObject({
  user_id: z.string().optional(),
  reason: z.string().optional(),
  id_server: z.unknown().optional(),
  medium: z.unknown().optional(),
  address: z.unknown().optional(),
  id_access_token: z.unknown().optional(),
});
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
    invite_3pid: z.array(threepidInvite).max(100).optional(),
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
  const { rooms, identity } = services;
  // A /join carrying third_party_signed first turns the third-party invite into a member invite (as Synapse).
  const redeem = async (userId: string, roomIdOrAlias: string, body: z.output<typeof joinBody>) => {
    const signed = body.third_party_signed;
    if (!signed) return;
    await identity.invites.redeemOnJoin(userId, await rooms.resolveRoomIdOrAlias(roomIdOrAlias), signed);
  };
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
        // As Synapse: third-party invites go out once the room exists; a failure fails the request.
        for (const invite of body.invite_3pid ?? []) await identity.invites.invite(actorOf(requester), roomId, invite);
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
      body: joinBody,
      query: viaQuery,
      rateLimit: 'message',
      handler: async ({ params, body, query, requester }) => {
        await redeem(requester.userId, params.roomIdOrAlias!, body);
        return { room_id: await rooms.join(actorOf(requester), params.roomIdOrAlias!, body.reason, [...list(query.via), ...list(query.server_name)], body) };
      },
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/join
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/join',
      auth: 'user',
      allowGuests: true,
      body: joinBody,
      rateLimit: 'message',
      handler: async ({ params, body, requester }) => {
        await redeem(requester.userId, params.roomId!, body);
        return { room_id: await rooms.join(actorOf(requester), params.roomId!, body.reason, [], body) };
      },
    }),
    // Spec: POST /_matrix/client/v3/rooms/{roomId}/invite
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/invite',
      auth: 'user',
      body: inviteBody,
      rateLimit: 'message',
      handler: async ({ params, body, requester }) => {
        if (body.user_id !== undefined) {
          await rooms.invite(actorOf(requester), params.roomId!, body.user_id, body.reason);
          return {};
        }
        if (body.id_server === undefined && body.medium === undefined && body.address === undefined) {
          throw new MatrixError('M_MISSING_PARAM', "Missing parameter 'user_id'");
        }
        const parsed = threepidInvite.safeParse(body);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          const field = String(issue?.path[0] ?? 'body');
          throw issue?.code === 'invalid_type' && issue.input === undefined
            ? new MatrixError('M_MISSING_PARAM', `Missing parameter '${field}'`)
            : new MatrixError('M_INVALID_PARAM', `Invalid parameter '${field}'`);
        }
        await identity.invites.invite(actorOf(requester), params.roomId!, parsed.data);
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
