import type { Services } from '../../homeserver.js';
import type { RouteDefinition } from '../../http/route.js';
import { adminRoomRoutes } from './rooms.js';
import { adminUserRoutes } from './users.js';

// Synapse's admin API (`/_synapse/admin`), one file per part of its documentation.
export function synapseAdminRoutes(services: Services): RouteDefinition[] {
  return [...adminUserRoutes(services), ...adminRoomRoutes(services)];
}
