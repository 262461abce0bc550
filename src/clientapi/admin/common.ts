import { z } from 'zod';
import { forbidden, invalidParam, notFound } from '../../errors.js';
import type { Services } from '../../homeserver.js';
import type { AuthedContext } from '../../http/route.js';

// Synapse's admin API lives beside the Matrix APIs under its own prefix; tools (synadm, admin UIs) call these.
export const SYNAPSE_ADMIN_V1 = ['/_synapse/admin/v1'] as const;
export const SYNAPSE_ADMIN_V2 = ['/_synapse/admin/v2'] as const;

// Pages are cut here whatever `limit` asks for: a huge limit cannot make one answer unbounded.
export const MAX_PAGE = 1000;

/** Synapse's `parse_boolean`: only the strings "true" and "false". */
export const queryBool = z.enum(['true', 'false']).transform((v) => v === 'true');
export const queryFrom = z.coerce.number().int().min(0).default(0);
export const queryLimit = (fallback: number) => z.coerce.number().int().min(0).default(fallback).transform((n) => Math.min(n, MAX_PAGE));
export const queryDir = z.enum(['f', 'b']).default('f');

/** Throws 403 M_FORBIDDEN unless the caller is a server admin; returns the admin's user id for the log line. */
export async function requireAdmin(services: Services, ctx: AuthedContext<unknown, unknown>): Promise<string> {
  if (!(await services.users.isAdmin(ctx.requester.userId))) throw forbidden('You are not a server admin');
  return ctx.requester.userId;
}

/** A local user id that has an account here: 400 for remote or malformed ids, 404 for unknown ones. */
export async function requireLocalUser(services: Services, userId: string, what = 'look up'): Promise<void> {
  if (!/^@[^:]+:.+$/.test(userId)) throw invalidParam('Invalid user id');
  if (!services.users.isLocalUserId(userId)) throw invalidParam(`Can only ${what} local users`);
  if (!(await services.users.getUser(userId))) throw notFound('User not found');
}

/** One info line per admin action: who did what to whom (never secrets). */
export function logAdminAction(services: Services, admin: string, action: string, target: Record<string, unknown>): void {
  services.logger.info({ admin, action, ...target }, 'admin action');
}
