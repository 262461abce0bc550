import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { idServerName } from '../identity/identityClient.js';

export function accountRoutes(services: Services): RouteDefinition[] {
  const { users } = services;
  return [
    // Spec: Client-Server API, "GET /_matrix/client/v3/account/whoami"
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/account/whoami',
      auth: 'user',
      allowGuests: true,
      handler: ({ requester }) => {
        const out: Record<string, unknown> = { user_id: requester.userId, is_guest: requester.isGuest };
        if (requester.deviceId !== undefined) out.device_id = requester.deviceId;
        return out;
      },
    }),
    // Spec: Client-Server API, "POST /_matrix/client/v3/account/password"
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/account/password',
      auth: 'user',
      body: z.looseObject({ new_password: z.string(), logout_devices: z.boolean().nullish(), auth: z.unknown().optional() }),
      handler: async ({ requester, body }) => {
        await users.account.changePassword(requester, {
          new_password: body.new_password,
          logout_devices: body.logout_devices ?? undefined,
          auth: body.auth,
        });
        return {};
      },
    }),
    // Spec: Client-Server API, "POST /_matrix/client/v3/account/deactivate"
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/account/deactivate',
      auth: 'user',
      body: z.looseObject({ auth: z.unknown().optional(), erase: z.boolean().nullish(), id_server: z.string().nullish() }),
      handler: async ({ requester, body }) => {
        await users.account.deactivate(requester, { auth: body.auth, erase: body.erase ?? undefined });
        // The 3PIDs bound through this server are unbound from their identity servers (src/identity/bindings.ts).
        const idServer = typeof body.id_server === 'string' && idServerName.safeParse(body.id_server).success ? body.id_server : undefined;
        return { id_server_unbind_result: await services.identity.bindings.unbindAll(requester.userId, idServer) };
      },
    }),
  ];
}
