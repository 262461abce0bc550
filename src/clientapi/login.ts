import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, CLIENT_V3_ONLY, defineRoute, type RouteDefinition } from '../http/route.js';
import type { OpenedSession } from '../users/deviceService.js';

/** The token part of /login and /register responses (spec: "POST /login" 200 response). */
export function sessionResponse(userId: string, serverName: string, session: OpenedSession | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = { user_id: userId, home_server: serverName };
  if (!session) return out;
  out.access_token = session.accessToken;
  out.device_id = session.deviceId;
  if (session.refreshToken !== undefined) out.refresh_token = session.refreshToken;
  if (session.expiresInMs !== undefined) out.expires_in_ms = session.expiresInMs;
  return out;
}

const loginBody = z.looseObject({
  type: z.string(),
  device_id: z.string().min(1).max(255).nullish(),
  initial_device_display_name: z.string().max(1000).nullish(),
  refresh_token: z.boolean().nullish(),
});

export function loginRoutes(services: Services): RouteDefinition[] {
  const { users } = services;
  return [
    // Spec: Client-Server API, "GET /_matrix/client/v3/login"
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/login',
      auth: 'none',
      handler: () => ({ flows: users.login.flows() }),
    }),
    // Spec: Client-Server API, "POST /_matrix/client/v3/login"
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/login',
      auth: 'none',
      body: loginBody,
      rateLimit: 'login',
      handler: async ({ body, ip, userAgent, accessToken }) => {
        const result = await users.login.login(
          {
            ...body,
            device_id: body.device_id ?? undefined,
            initial_device_display_name: body.initial_device_display_name ?? undefined,
            refresh_token: body.refresh_token ?? undefined,
          },
          { ip, userAgent, accessToken },
        );
        return {
          ...sessionResponse(result.userId, services.serverName, result),
          well_known: { 'm.homeserver': { base_url: services.publicBaseUrl } },
        };
      },
    }),
    // Spec: Client-Server API, "POST /_matrix/client/v3/logout"
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/logout',
      auth: 'user',
      allowGuests: true,
      handler: async ({ requester }) => {
        await users.devices.logout(requester);
        return {};
      },
    }),
    // Spec: Client-Server API, "POST /_matrix/client/v3/logout/all"
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/logout/all',
      auth: 'user',
      allowGuests: true,
      handler: async ({ requester }) => {
        await users.devices.logoutAll(requester.userId);
        return {};
      },
    }),
    // Spec: Client-Server API, "POST /_matrix/client/v3/refresh" (added in v1.3, so no r0)
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3_ONLY,
      path: '/refresh',
      auth: 'none',
      body: z.object({ refresh_token: z.string() }),
      handler: async ({ body }) => {
        const issued = await users.tokens.refresh(body.refresh_token);
        const out: Record<string, unknown> = { access_token: issued.accessToken, refresh_token: issued.refreshToken };
        if (issued.expiresInMs !== undefined) out.expires_in_ms = issued.expiresInMs;
        return out;
      },
    }),
  ];
}
