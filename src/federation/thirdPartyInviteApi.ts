/**
 * Third-party invites between servers (spec: Server-Server API, "Third-party invites"): the identity
 * server's bind notification and another server's request to turn a third-party invite into an invite.
 * The work is in identity/thirdPartyInvites.ts.
 */
import { defineRoute, type RouteDefinition } from '../http/route.js';
import { exchangeBody, onBindBody, type ThirdPartyInvites } from '../identity/thirdPartyInvites.js';

const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;

export function thirdPartyInviteApiRoutes(invites: ThirdPartyInvites): RouteDefinition[] {
  const onBind = async ({ body }: { body: Parameters<ThirdPartyInvites['onBind']>[0] }) => {
    await invites.onBind(body);
    return {};
  };
  return [
    // Spec: PUT /_matrix/federation/v1/3pid/onbind — called by identity servers, which have no server signature.
    defineRoute({ method: 'PUT', prefixes: FEDERATION_V1, path: '/3pid/onbind', auth: 'none', body: onBindBody, handler: onBind }),
    // Synapse and Sydent (and SyTest) use POST for the same notification.
    defineRoute({ method: 'POST', prefixes: FEDERATION_V1, path: '/3pid/onbind', auth: 'none', body: onBindBody, handler: onBind }),
    // Spec: PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId}
    defineRoute({
      method: 'PUT',
      prefixes: FEDERATION_V1,
      path: '/exchange_third_party_invite/:roomId',
      auth: 'server',
      body: exchangeBody,
      handler: async ({ params, body }) => {
        await invites.onExchangeRequest(params.roomId!, body);
        return {};
      },
    }),
  ];
}
