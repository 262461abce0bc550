import { z } from 'zod';
import { forbidden, unknownToken } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;

export function openIdRoutes(services: Services): RouteDefinition[] {
  const { openId } = services.directory;
  return [
    // Spec: Client-Server API, POST /_matrix/client/v3/user/{userId}/openid/request_token
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/user/:userId/openid/request_token',
      auth: 'user',
      body: z.looseObject({}),
      handler: ({ params, requester }) => {
        if (params.userId !== requester.userId) throw forbidden('Cannot request an OpenID token for another user');
        return openId.issue(requester.userId);
      },
    }),
    // Spec: Server-Server API, GET /_matrix/federation/v1/openid/userinfo — the token is the only credential.
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/openid/userinfo',
      auth: 'none',
      handler: ({ query }) => {
        const token = query.access_token;
        if (typeof token !== 'string' || token === '') throw unknownToken('Access token unknown or expired');
        return openId.userInfo(token);
      },
    }),
  ];
}
