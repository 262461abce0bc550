import { z } from 'zod';
import { invalidParam, notFound } from '../../errors.js';
import type { Services } from '../../homeserver.js';
import { JsonReply, defineRoute, type RouteDefinition } from '../../http/route.js';
import { listEntry } from '../../users/adminUsers.js';
import { whoisResponse } from '../admin.js';
import { logAdminAction, queryBool, queryDir, queryFrom, queryLimit, requireAdmin, requireLocalUser, SYNAPSE_ADMIN_V1, SYNAPSE_ADMIN_V2 } from './common.js';

const USER_ORDERS = ['name', 'is_guest', 'admin', 'deactivated', 'displayname', 'avatar_url', 'creation_ts', 'last_seen_ts', 'user_type', 'shadow_banned'] as const;

function deviceEntry(userId: string, d: Awaited<ReturnType<Services['users']['listDevices']>>[number]) {
  return {
    user_id: userId,
    device_id: d.deviceId,
    display_name: d.displayName,
    last_seen_ip: d.lastSeenIp,
    last_seen_ts: d.lastSeenTs,
    last_seen_user_agent: d.lastSeenUserAgent,
    dehydrated: false,
  };
}

// Synapse admin API, "User Admin API" (docs/admin_api/user_admin_api.md).
export function adminUserRoutes(services: Services): RouteDefinition[] {
  const { users, adminUsers } = services;
  return [
    // Synapse admin API: "List Accounts (V2)"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V2,
      path: '/users',
      auth: 'user',
      query: z
        .object({
          from: queryFrom,
          limit: queryLimit(100),
          guests: queryBool.default(true),
          deactivated: queryBool.default(false),
          admins: queryBool.optional(),
          name: z.string().max(1024).optional(),
          user_id: z.string().max(1024).optional(),
          order_by: z.enum(USER_ORDERS).default('name'),
          dir: queryDir,
        })
        .loose(),
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        const q = ctx.query;
        // Skjól has no user types or shadow bans: ordering by them is ordering by name.
        const orderBy = q.order_by === 'user_type' || q.order_by === 'shadow_banned' ? 'name' : q.order_by;
        const { users: rows, total } = await adminUsers.list({
          from: q.from,
          limit: q.limit,
          guests: q.guests,
          deactivated: q.deactivated,
          admins: q.admins,
          name: q.name,
          userId: q.user_id,
          orderBy,
          dir: q.dir,
        });
        const next = q.from + rows.length;
        return { users: rows.map(listEntry), total, ...(next < total && rows.length > 0 ? { next_token: String(next) } : {}) };
      },
    }),
    // Synapse admin API: "Query User Account"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V2,
      path: '/users/:userId',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        await requireLocalUser(services, ctx.params.userId!);
        return adminUsers.details(ctx.params.userId!);
      },
    }),
    // Synapse admin API: "Create or modify account" (201 when created)
    defineRoute({
      method: 'PUT',
      prefixes: SYNAPSE_ADMIN_V2,
      path: '/users/:userId',
      auth: 'user',
      body: z
        .object({
          password: z.string().optional(),
          logout_devices: z.boolean().optional(),
          displayname: z.string().nullable().optional(),
          avatar_url: z.string().nullable().optional(),
          admin: z.boolean().optional(),
          deactivated: z.boolean().optional(),
          threepids: z.array(z.unknown()).optional(),
          external_ids: z.array(z.unknown()).optional(),
          locked: z.boolean().optional(),
          user_type: z.string().nullable().optional(),
        })
        .loose(),
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const userId = ctx.params.userId!;
        if (!/^@[^:]+:.+$/.test(userId)) throw invalidParam('Invalid user id');
        if (!users.isLocalUserId(userId)) throw invalidParam('This endpoint can only be used with local users');
        const body = ctx.body;
        // Skjól keeps no third-party ids, external ids, locks or user types for accounts: refused, never silently dropped.
        if (body.threepids?.length) throw invalidParam('threepids are not supported by this server');
        if (body.external_ids?.length) throw invalidParam('external_ids are not supported by this server');
        if (body.locked === true) throw invalidParam('locked is not supported by this server');
        if (typeof body.user_type === 'string') throw invalidParam('user_type is not supported by this server');
        if (userId === admin && body.admin === false) throw invalidParam('You may not demote yourself.');
        if (userId === admin && body.deactivated === true) throw invalidParam('You may not deactivate yourself.');
        const created = await adminUsers.upsert(userId, {
          password: body.password,
          logoutDevices: body.logout_devices ?? true,
          displayname: body.displayname ?? undefined,
          avatarUrl: body.avatar_url ?? undefined,
          admin: body.admin,
          deactivated: body.deactivated,
        });
        logAdminAction(services, admin, created ? 'create user' : 'modify user', {
          target: userId,
          fields: Object.keys(body).filter((k) => k !== 'password'),
          password: body.password !== undefined,
        });
        const details = await adminUsers.details(userId);
        return created ? new JsonReply(201, details) : details;
      },
    }),
    // Synapse admin API: "Get whether a user is a server administrator or not" (Element probes it)
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/users/:userId/admin',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        if (!users.isLocalUserId(ctx.params.userId!)) throw invalidParam('Only local users can be admins of this homeserver');
        return { admin: await users.isAdmin(ctx.params.userId!) };
      },
    }),
    // Synapse admin API: "Change whether a user is a server administrator or not"
    defineRoute({
      method: 'PUT',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/users/:userId/admin',
      auth: 'user',
      body: z.object({ admin: z.boolean() }).loose(),
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const userId = ctx.params.userId!;
        await requireLocalUser(services, userId, 'set admin flags of');
        if (userId === admin && !ctx.body.admin) throw invalidParam('You may not demote yourself.');
        await adminUsers.setAdmin(userId, ctx.body.admin);
        logAdminAction(services, admin, 'set server admin', { target: userId, value: ctx.body.admin });
        return {};
      },
    }),
    // Synapse admin API: "Reset password"
    defineRoute({
      method: 'POST',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/reset_password/:userId',
      auth: 'user',
      body: z.object({ new_password: z.string(), logout_devices: z.boolean().optional() }).loose(),
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const userId = ctx.params.userId!;
        await requireLocalUser(services, userId, 'reset the password of');
        await adminUsers.resetPassword(userId, ctx.body.new_password, ctx.body.logout_devices ?? true);
        logAdminAction(services, admin, 'reset password', { target: userId, logoutDevices: ctx.body.logout_devices ?? true });
        return {};
      },
    }),
    // Synapse admin API: "Deactivate Account" (with `erase`)
    defineRoute({
      method: 'POST',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/deactivate/:userId',
      auth: 'user',
      body: z.object({ erase: z.boolean().optional() }).loose(),
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const userId = ctx.params.userId!;
        await requireLocalUser(services, userId, 'deactivate');
        logAdminAction(services, admin, 'deactivate user', { target: userId, erase: ctx.body.erase ?? false });
        await services.deactivation.deactivate(userId, ctx.body.erase ?? false);
        return { id_server_unbind_result: 'success' };
      },
    }),
    // Synapse admin API: "Query current sessions for a user" (whois)
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/whois/:userId',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        await requireLocalUser(services, ctx.params.userId!);
        return whoisResponse(services, ctx.params.userId!);
      },
    }),
    // Synapse admin API: "List room memberships of a user"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/users/:userId/joined_rooms',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        await requireLocalUser(services, ctx.params.userId!);
        const joined = await services.rooms.joinedRooms(ctx.params.userId!);
        return { joined_rooms: joined, total: joined.length };
      },
    }),
    // Synapse admin API: "List all devices"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V2,
      path: '/users/:userId/devices',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        const userId = ctx.params.userId!;
        await requireLocalUser(services, userId);
        const devices = (await users.listDevices(userId)).map((d) => deviceEntry(userId, d));
        return { devices, total: devices.length };
      },
    }),
    // Synapse admin API: "Show a device"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V2,
      path: '/users/:userId/devices/:deviceId',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        const userId = ctx.params.userId!;
        await requireLocalUser(services, userId);
        const device = await users.getDevice(userId, ctx.params.deviceId!);
        if (!device) throw notFound('No device found');
        return deviceEntry(userId, device);
      },
    }),
    // Synapse admin API: "Delete a device" (an unknown device is a success, as Synapse)
    defineRoute({
      method: 'DELETE',
      prefixes: SYNAPSE_ADMIN_V2,
      path: '/users/:userId/devices/:deviceId',
      auth: 'user',
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const userId = ctx.params.userId!;
        await requireLocalUser(services, userId);
        await users.devices.delete(userId, [ctx.params.deviceId!]);
        logAdminAction(services, admin, 'delete device', { target: userId, deviceId: ctx.params.deviceId });
        return {};
      },
    }),
    // Synapse admin API: "Delete multiple devices" (synadm user prune-devices)
    defineRoute({
      method: 'POST',
      prefixes: SYNAPSE_ADMIN_V2,
      path: '/users/:userId/delete_devices',
      auth: 'user',
      body: z.object({ devices: z.array(z.string().max(255)).max(1000) }).loose(),
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const userId = ctx.params.userId!;
        await requireLocalUser(services, userId);
        await users.devices.delete(userId, ctx.body.devices);
        logAdminAction(services, admin, 'delete devices', { target: userId, count: ctx.body.devices.length });
        return {};
      },
    }),
  ];
}
