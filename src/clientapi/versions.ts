import { defineRoute, type RouteDefinition } from '../http/route.js';
import type { Services } from '../homeserver.js';

// Only versions whose features are implemented are listed: clients decide what to use by this list
// (v1.4 threads and private receipts, v1.7 async uploads, v1.8 room version 11, v1.11 authenticated media).
export const SUPPORTED_SPEC_VERSIONS = [
  'r0.0.1', 'r0.1.0', 'r0.2.0', 'r0.3.0', 'r0.4.0', 'r0.5.0', 'r0.6.0', 'r0.6.1',
  'v1.1', 'v1.2', 'v1.3', 'v1.4', 'v1.5', 'v1.6', 'v1.7', 'v1.8', 'v1.9', 'v1.10', 'v1.11',
];

/** Unstable features clients probe for; each is implemented. */
export const UNSTABLE_FEATURES: Record<string, boolean> = {
  // MSC3814 dehydrated devices, used by current Element.
  'org.matrix.msc3814': true,
};

export function versionRoutes(services: Services): RouteDefinition[] {
  return [
    // Spec: Client-Server API, "GET /_matrix/client/versions"
    defineRoute({
      method: 'GET',
      prefixes: ['/_matrix/client'],
      path: '/versions',
      auth: 'none',
      handler: () => ({ versions: SUPPORTED_SPEC_VERSIONS, unstable_features: UNSTABLE_FEATURES }),
    }),
    // Spec: Client-Server API, "GET /.well-known/matrix/client"
    defineRoute({
      method: 'GET',
      prefixes: ['/.well-known/matrix'],
      path: '/client',
      auth: 'none',
      handler: () => ({ 'm.homeserver': { base_url: services.publicBaseUrl } }),
    }),
    // Spec: Server-Server API, "GET /.well-known/matrix/server"
    defineRoute({
      method: 'GET',
      prefixes: ['/.well-known/matrix'],
      path: '/server',
      auth: 'none',
      handler: () => ({ 'm.server': services.federationAuthority }),
    }),
  ];
}
