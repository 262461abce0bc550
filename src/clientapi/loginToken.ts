import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V1, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: POST /_matrix/client/v1/login/get_token (v1.7). Only when `login_via_existing_session.enabled`:
// otherwise the endpoint does not exist (404 M_UNRECOGNIZED), as the spec allows for an optional endpoint.
export function loginTokenRoutes(services: Services): RouteDefinition[] {
  const { config, users } = services;
  const { loginTokens } = services.directory;
  if (!config.login_via_existing_session.enabled) return [];
  return [
    // Spec: POST /_matrix/client/v1/login/get_token
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V1,
      path: '/login/get_token',
      auth: 'user',
      rateLimit: 'login',
      body: z.looseObject({ auth: z.unknown().optional() }),
      handler: async ({ body, requester }) => {
        // A fresh UIA session every time: each new device needs its own consent (spec: "MUST always re-prompt").
        const passed = config.login_via_existing_session.require_ui_auth
          ? await users.requireReauth(requester, body.auth, 'POST /login/get_token')
          : undefined;
        const issued = await loginTokens.issue(requester.userId);
        await users.finishReauth(passed);
        return { login_token: issued.token, expires_in_ms: issued.expiresInMs };
      },
    }),
  ];
}
