import { z } from 'zod';
import type { Services } from '../../homeserver.js';
import { defineRoute, type RouteDefinition } from '../../http/route.js';
import { deletionStatus } from '../../rooms/roomDeletion.js';
import { ROOM_ORDERS } from '../../rooms/roomAdmin.js';
import { logAdminAction, queryDir, queryFrom, queryLimit, requireAdmin, requireLocalUser, SYNAPSE_ADMIN_V1, SYNAPSE_ADMIN_V2 } from './common.js';

const deleteBody = z
  .object({
    new_room_user_id: z.string().max(255).optional(),
    room_name: z.string().max(1024).optional(),
    message: z.string().max(65536).optional(),
    block: z.boolean().default(false),
    purge: z.boolean().default(true),
    force_purge: z.boolean().optional(),
  })
  .loose();

function deleteParams(body: z.output<typeof deleteBody>) {
  return { newRoomUserId: body.new_room_user_id, roomName: body.room_name, message: body.message, block: body.block, purge: body.purge };
}

// Synapse admin API, "Room Admin API" (docs/admin_api/rooms.md).
export function adminRoomRoutes(services: Services): RouteDefinition[] {
  const { roomAdmin, roomDeletions } = services;
  return [
    // Synapse admin API: "List Room API"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/rooms',
      auth: 'user',
      query: z
        .object({
          from: queryFrom,
          limit: queryLimit(100),
          order_by: z.enum(ROOM_ORDERS).default('name'),
          dir: queryDir,
          search_term: z.string().max(1024).optional(),
        })
        .loose(),
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        const q = ctx.query;
        return roomAdmin.list({ from: q.from, limit: q.limit, orderBy: q.order_by, dir: q.dir, searchTerm: q.search_term });
      },
    }),
    // Synapse admin API: "Room Details API"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/rooms/:roomId',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        return roomAdmin.details(ctx.params.roomId!);
      },
    }),
    // Synapse admin API: "Room Members API"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/rooms/:roomId/members',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        return roomAdmin.members(ctx.params.roomId!);
      },
    }),
    // Synapse admin API: "Room State API"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/rooms/:roomId/state',
      auth: 'user',
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        return roomAdmin.state(ctx.params.roomId!, admin);
      },
    }),
    // Synapse admin API: "Delete Room API" (version 1, synchronous; what `synadm room delete` calls)
    defineRoute({
      method: 'DELETE',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/rooms/:roomId',
      auth: 'user',
      body: deleteBody,
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const roomId = ctx.params.roomId!;
        logAdminAction(services, admin, 'delete room', { roomId, block: ctx.body.block, purge: ctx.body.purge, newRoomUserId: ctx.body.new_room_user_id });
        return roomDeletions.deleteNow(admin, roomId, deleteParams(ctx.body));
      },
    }),
    // Synapse admin API: "Delete Room API" (version 2, in the background)
    defineRoute({
      method: 'DELETE',
      prefixes: SYNAPSE_ADMIN_V2,
      path: '/rooms/:roomId',
      auth: 'user',
      body: deleteBody,
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const roomId = ctx.params.roomId!;
        const deleteId = await roomDeletions.start(admin, roomId, deleteParams(ctx.body));
        logAdminAction(services, admin, 'delete room (v2)', { roomId, deleteId, block: ctx.body.block, purge: ctx.body.purge });
        return { delete_id: deleteId };
      },
    }),
    // Synapse admin API: "Query by room_id" (status of a room's deletions)
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V2,
      path: '/rooms/:roomId/delete_status',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        return { results: (await roomDeletions.statusOfRoom(ctx.params.roomId!)).map(deletionStatus) };
      },
    }),
    // Synapse admin API: "Query by delete_id"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V2,
      path: '/rooms/delete_status/:deleteId',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        const { delete_id: _id, ...status } = deletionStatus(await roomDeletions.status(ctx.params.deleteId!));
        return status;
      },
    }),
    // Synapse admin API: "Make Room Admin API"
    defineRoute({
      method: 'POST',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/rooms/:roomId/make_room_admin',
      auth: 'user',
      body: z.object({ user_id: z.string().max(255).optional() }).loose(),
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const roomId = ctx.params.roomId!;
        const userId = ctx.body.user_id ?? admin;
        await requireLocalUser(services, userId, 'make room admins of');
        await roomAdmin.makeRoomAdmin(roomId, userId);
        logAdminAction(services, admin, 'make room admin', { roomId, target: userId });
        return {};
      },
    }),
  ];
}
