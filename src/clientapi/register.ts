import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V1, CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { sessionResponse } from './login.js';

const registerBody = z.looseObject({
  type: z.string().nullish(),
  auth: z.unknown().optional(),
  username: z.string().nullish(),
  password: z.string().nullish(),
  device_id: z.string().min(1).max(255).nullish(),
  initial_device_display_name: z.string().max(1000).nullish(),
  inhibit_login: z.boolean().nullish(),
  refresh_token: z.boolean().nullish(),
  guest_access_token: z.string().max(1024).nullish(),
});

export function registerRoutes(services: Services): RouteDefinition[] {
  const { users } = services;
  // Spec "Guest access": the guest a `guest_access_token` belongs to; any other token names nobody.
  const guestOf = async (token: string, ip: string, userAgent: string | undefined): Promise<string | undefined> => {
    try {
      const found = await users.authenticate(token, { ip, userAgent, query: {} });
      return found.isGuest ? found.userId : undefined;
    } catch {
      return undefined;
    }
  };
  return [
    // Spec: Client-Server API, "POST /_matrix/client/v3/register"
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/register',
      auth: 'optional',
      allowGuests: true,
      body: registerBody,
      query: z.looseObject({ kind: z.enum(['user', 'guest']).default('user') }),
      // rc_registration is spent in the service, only when an account is created.
      handler: async ({ body, query, requester, ip, userAgent }) => {
        const exempt = services.appservices.isRateLimitExempt(requester?.appserviceId);
        const upgradingGuest = body.guest_access_token ? await guestOf(body.guest_access_token, ip, userAgent) : undefined;
        const rateLimitKey = exempt ? undefined : requester?.appserviceId !== undefined ? requester.userId : ip;
        const registered = await users.registration.register(
          {
            type: body.type ?? undefined,
            auth: body.auth,
            username: body.username ?? undefined,
            password: body.password ?? undefined,
            device_id: body.device_id ?? undefined,
            initial_device_display_name: body.initial_device_display_name ?? undefined,
            inhibit_login: body.inhibit_login ?? undefined,
            refresh_token: body.refresh_token ?? undefined,
          },
          { kind: query.kind, requester, ip, userAgent, rateLimitKey, upgradingGuest },
        );
        return sessionResponse(registered.userId, services.serverName, registered.session);
      },
    }),
    // Spec: Client-Server API, "GET /_matrix/client/v3/register/available"
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/register/available',
      auth: 'none',
      query: z.looseObject({ username: z.string() }),
      handler: async ({ query }) => {
        await users.registration.available(query.username);
        return { available: true };
      },
    }),
    // Spec: Client-Server API, "GET /_matrix/client/v1/register/m.login.registration_token/validity"
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V1,
      path: '/register/m.login.registration_token/validity',
      auth: 'none',
      query: z.looseObject({ token: z.string() }),
      rateLimit: 'registration',
      handler: async ({ query }) => ({ valid: await users.registration.tokenValid(query.token) }),
    }),
  ];
}
