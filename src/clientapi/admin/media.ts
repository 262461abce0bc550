import { z } from 'zod';
import type { Services } from '../../homeserver.js';
import { defineRoute, type RouteDefinition } from '../../http/route.js';
import { mediaEntry } from '../../media/adminMedia.js';
import { USER_MEDIA_ORDERS } from '../../storage/repositories/adminMedia.js';
import { logAdminAction, queryBool, queryDir, queryFrom, queryLimit, requireAdmin, requireLocalUser, SYNAPSE_ADMIN_V1 } from './common.js';

const userMediaQuery = z
  .object({ from: queryFrom, limit: queryLimit(100), order_by: z.enum(USER_MEDIA_ORDERS).default('created_ts'), dir: queryDir })
  .loose();
const timestamp = z.coerce.number().int().min(0);

// Synapse admin API, "Media Admin API" (docs/admin_api/media_admin_api.md) and "List media uploaded by a user".
export function adminMediaRoutes(services: Services): RouteDefinition[] {
  const { adminMedia } = services;
  return [
    // Synapse admin API: "List media uploaded by a user"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/users/:userId/media',
      auth: 'user',
      query: userMediaQuery,
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        await requireLocalUser(services, ctx.params.userId!);
        const q = ctx.query;
        const { media, total } = await adminMedia.userMedia(ctx.params.userId!, { from: q.from, limit: q.limit, orderBy: q.order_by, dir: q.dir });
        const next = q.from + media.length;
        return { media: media.map(mediaEntry), total, ...(next < total && media.length > 0 ? { next_token: next } : {}) };
      },
    }),
    // Synapse admin API: "Delete media uploaded by a user"
    defineRoute({
      method: 'DELETE',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/users/:userId/media',
      auth: 'user',
      query: userMediaQuery,
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        await requireLocalUser(services, ctx.params.userId!);
        const q = ctx.query;
        const deleted = await adminMedia.deleteUserMedia(ctx.params.userId!, { from: q.from, limit: q.limit, orderBy: q.order_by, dir: q.dir });
        logAdminAction(services, admin, 'delete user media', { target: ctx.params.userId, count: deleted.length });
        return { deleted_media: deleted, total: deleted.length };
      },
    }),
    // Synapse admin API: "Delete a specific local media"
    defineRoute({
      method: 'DELETE',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/media/:serverName/:mediaId',
      auth: 'user',
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        await adminMedia.deleteOne(ctx.params.serverName!, ctx.params.mediaId!);
        logAdminAction(services, admin, 'delete media', { mediaId: ctx.params.mediaId });
        return { deleted_media: [ctx.params.mediaId!], total: 1 };
      },
    }),
    // Synapse admin API: "Delete local media by date or size"
    defineRoute({
      method: 'POST',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/media/:serverName/delete',
      auth: 'user',
      query: z.object({ before_ts: timestamp, size_gt: z.coerce.number().int().min(0).default(0), keep_profiles: queryBool.default(true) }).loose(),
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const q = ctx.query;
        const deleted = await adminMedia.deleteBefore(ctx.params.serverName!, { beforeTs: q.before_ts, sizeGt: q.size_gt, keepProfiles: q.keep_profiles });
        logAdminAction(services, admin, 'delete media by date', { beforeTs: q.before_ts, count: deleted.length });
        return { deleted_media: deleted, total: deleted.length };
      },
    }),
    // Synapse admin API: "Quarantining media by ID" (then downloads answer 404)
    defineRoute({
      method: 'POST',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/media/quarantine/:serverName/:mediaId',
      auth: 'user',
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        await adminMedia.setQuarantine(ctx.params.serverName!, ctx.params.mediaId!, admin);
        logAdminAction(services, admin, 'quarantine media', { origin: ctx.params.serverName, mediaId: ctx.params.mediaId });
        return {};
      },
    }),
    // Synapse admin API: "Remove media from quarantine by ID"
    defineRoute({
      method: 'POST',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/media/unquarantine/:serverName/:mediaId',
      auth: 'user',
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        await adminMedia.setQuarantine(ctx.params.serverName!, ctx.params.mediaId!, null);
        logAdminAction(services, admin, 'unquarantine media', { origin: ctx.params.serverName, mediaId: ctx.params.mediaId });
        return {};
      },
    }),
    // Synapse admin API: "Purge Remote Media API"
    defineRoute({
      method: 'POST',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/purge_media_cache',
      auth: 'user',
      query: z.object({ before_ts: timestamp }).loose(),
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const deleted = await adminMedia.purgeCache(ctx.query.before_ts);
        logAdminAction(services, admin, 'purge media cache', { beforeTs: ctx.query.before_ts, count: deleted });
        return { deleted };
      },
    }),
  ];
}
