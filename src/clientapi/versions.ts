import { defineRoute, type RouteDefinition } from '../http/route.js';
import type { Services } from '../homeserver.js';

// Only versions whose features are implemented are listed: clients decide what to use by this list
// (v1.4 threads and private receipts, v1.7 async uploads, v1.8 room version 11, v1.11 authenticated media).
export const SUPPORTED_SPEC_VERSIONS = [
  'r0.0.1', 'r0.1.0', 'r0.2.0', 'r0.3.0', 'r0.4.0', 'r0.5.0', 'r0.6.0', 'r0.6.1',
  'v1.1', 'v1.2', 'v1.3', 'v1.4', 'v1.5', 'v1.6', 'v1.7', 'v1.8', 'v1.9', 'v1.10', 'v1.11',
];

/**
 * Unstable features clients probe for, each implemented here (Synapse 1.120 advertises the same names; the
 * ones it sends that this server lacks — label filtering, MSC2432/MSC2666 endpoints, forced encryption
 * presets, busy presence, MSC3773/3874/3912/3391/4069/4028/4108/4140 — are left out).
 */
export function unstableFeatures(config: Services['config']): Record<string, boolean> {
  return {
    // MSC1756 cross-signing: Element sets up cross-signing and key backup only when this is true.
    'org.matrix.e2e_cross_signing': true,
    // MSC2285 private read receipts (m.read.private).
    'org.matrix.msc2285.stable': true,
    // MSC3827 filtering /publicRooms by room type.
    'org.matrix.msc3827.stable': true,
    // MSC3440 threads (relations and /threads).
    'org.matrix.msc3440.stable': true,
    // MSC3771 threaded read receipts (thread_id).
    'org.matrix.msc3771': true,
    // MSC2659 appservice ping (POST /_matrix/client/v1/appservice/{id}/ping).
    'fi.mau.msc2659.stable': true,
    // MSC3882 login with an existing session: only when POST /login/get_token is served.
    'org.matrix.msc3882': config.login_via_existing_session.enabled,
    // MSC3981 recursive relations (?recurse=true).
    'org.matrix.msc3981': true,
    // MSC3814 dehydrated devices, used by current Element.
    'org.matrix.msc3814': true,
    // MSC4151 reporting a room (POST /rooms/{roomId}/report).
    'org.matrix.msc4151': true,
    // MSC4186 simplified sliding sync: Element X and matrix-rust-sdk apps connect only when this is true.
    'org.matrix.simplified_msc3575': true,
  };
}

export function versionRoutes(services: Services): RouteDefinition[] {
  return [
    // Spec: Client-Server API, "GET /_matrix/client/versions"
    defineRoute({
      method: 'GET',
      prefixes: ['/_matrix/client'],
      path: '/versions',
      auth: 'none',
      handler: () => ({ versions: SUPPORTED_SPEC_VERSIONS, unstable_features: unstableFeatures(services.config) }),
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
