import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { invalidParam, notFound } from '../../errors.js';
import type { Services } from '../../homeserver.js';
import { defineRoute, type RouteDefinition } from '../../http/route.js';
import {
  deleteRegistrationToken,
  getRegistrationToken,
  insertRegistrationToken,
  listRegistrationTokens,
  updateRegistrationToken,
  type RegistrationTokenRecord,
} from '../../storage/repositories/registrationTokens.js';
import { logAdminAction, queryBool, requireAdmin, SYNAPSE_ADMIN_V1 } from './common.js';

// Synapse: tokens are 1–64 characters of [A-Za-z0-9._~-].
const TOKEN_RE = /^[A-Za-z0-9._~-]{1,64}$/;
const TOKEN_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-';
const usesAllowed = z.number().int().min(0).max(2 ** 31 - 1).nullable().optional();
const expiryTime = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional();

function tokenJson(t: RegistrationTokenRecord) {
  return { token: t.token, uses_allowed: t.usesAllowed, pending: t.pending, completed: t.completed, expiry_time: t.expiryTime };
}

function checkToken(token: string): string {
  if (!TOKEN_RE.test(token)) throw invalidParam('token must consist only of characters matched by the regex [A-Za-z0-9._~-], and be at most 64 characters');
  return token;
}

// Synapse admin API, "Registration Tokens" (docs/usage/administration/admin_api/registration_tokens.md).
export function adminTokenRoutes(services: Services): RouteDefinition[] {
  const db = services.db.knex;
  const now = () => services.clock.now();
  const requireToken = async (token: string) => {
    const t = await getRegistrationToken(db, checkToken(token));
    if (!t) throw notFound(`No such registration token: ${token}`);
    return t;
  };
  return [
    // Synapse admin API: "List all tokens"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/registration_tokens',
      auth: 'user',
      query: z.object({ valid: queryBool.optional() }).loose(),
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        return { registration_tokens: (await listRegistrationTokens(db, ctx.query.valid, now())).map(tokenJson) };
      },
    }),
    // Synapse admin API: "Create token"
    defineRoute({
      method: 'POST',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/registration_tokens/new',
      auth: 'user',
      body: z.object({ token: z.string().optional(), uses_allowed: usesAllowed, expiry_time: expiryTime, length: z.number().int().min(1).max(64).optional() }).loose(),
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const body = ctx.body;
        if (body.expiry_time != null && body.expiry_time < now()) throw invalidParam('expiry_time must not be in the past');
        const token = body.token !== undefined ? checkToken(body.token) : Array.from({ length: body.length ?? 16 }, () => TOKEN_CHARS[randomInt(TOKEN_CHARS.length)]).join('');
        if (await getRegistrationToken(db, token)) throw invalidParam(`Token already exists: ${token}`);
        await insertRegistrationToken(db, token, body.uses_allowed ?? null, body.expiry_time ?? null);
        logAdminAction(services, admin, 'create registration token', { usesAllowed: body.uses_allowed ?? null, expiryTime: body.expiry_time ?? null });
        return tokenJson((await getRegistrationToken(db, token))!);
      },
    }),
    // Synapse admin API: "Get one token"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/registration_tokens/:token',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        return tokenJson(await requireToken(ctx.params.token!));
      },
    }),
    // Synapse admin API: "Update token"
    defineRoute({
      method: 'PUT',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/registration_tokens/:token',
      auth: 'user',
      body: z.object({ uses_allowed: usesAllowed, expiry_time: expiryTime }).loose(),
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const t = await requireToken(ctx.params.token!);
        if (ctx.body.expiry_time != null && ctx.body.expiry_time < now()) throw invalidParam('expiry_time must not be in the past');
        await updateRegistrationToken(db, t.token, { usesAllowed: ctx.body.uses_allowed, expiryTime: ctx.body.expiry_time });
        logAdminAction(services, admin, 'update registration token', { usesAllowed: ctx.body.uses_allowed, expiryTime: ctx.body.expiry_time });
        return tokenJson((await getRegistrationToken(db, t.token))!);
      },
    }),
    // Synapse admin API: "Delete token"
    defineRoute({
      method: 'DELETE',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/registration_tokens/:token',
      auth: 'user',
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const t = await requireToken(ctx.params.token!);
        await deleteRegistrationToken(db, t.token);
        logAdminAction(services, admin, 'delete registration token', {});
        return {};
      },
    }),
  ];
}
