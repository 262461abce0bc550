import { z } from 'zod';
import { invalidParam } from '../../errors.js';
import type { Services } from '../../homeserver.js';
import { defineRoute, type RouteDefinition } from '../../http/route.js';
import { logAdminAction, queryFrom, queryLimit, requireAdmin, SYNAPSE_ADMIN_V1 } from './common.js';

function reportId(raw: string): number {
  if (!/^\d{1,15}$/.test(raw)) throw invalidParam('The report_id parameter must be a string representing a positive integer.');
  return Number(raw);
}

// Synapse admin API, "Event Reports API" (docs/admin_api/event_reports.md).
export function adminReportRoutes(services: Services): RouteDefinition[] {
  const { eventReports } = services;
  return [
    // Synapse admin API: "List reported events" (newest first by default)
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/event_reports',
      auth: 'user',
      query: z
        .object({
          from: queryFrom,
          limit: queryLimit(100),
          dir: z.enum(['f', 'b']).default('b'),
          room_id: z.string().max(255).optional(),
          user_id: z.string().max(255).optional(),
        })
        .loose(),
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        const q = ctx.query;
        const { reports, total } = await eventReports.list({ from: q.from, limit: q.limit, dir: q.dir, roomId: q.room_id, reporter: q.user_id });
        const next = q.from + reports.length;
        return { event_reports: reports, total, ...(next < total && reports.length > 0 ? { next_token: next } : {}) };
      },
    }),
    // Synapse admin API: "Show details of a specific event report"
    defineRoute({
      method: 'GET',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/event_reports/:reportId',
      auth: 'user',
      handler: async (ctx) => {
        await requireAdmin(services, ctx);
        return eventReports.get(reportId(ctx.params.reportId!));
      },
    }),
    // Synapse admin API: "Delete a specific event report"
    defineRoute({
      method: 'DELETE',
      prefixes: SYNAPSE_ADMIN_V1,
      path: '/event_reports/:reportId',
      auth: 'user',
      handler: async (ctx) => {
        const admin = await requireAdmin(services, ctx);
        const id = reportId(ctx.params.reportId!);
        await eventReports.delete(id);
        logAdminAction(services, admin, 'delete event report', { reportId: id });
        return {};
      },
    }),
  ];
}
