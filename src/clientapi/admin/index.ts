import type { Services } from '../../homeserver.js';
import type { RouteDefinition } from '../../http/route.js';
import { adminMediaRoutes } from './media.js';
import { adminReportRoutes } from './reports.js';
import { adminRoomRoutes } from './rooms.js';
import { adminServerRoutes } from './server.js';
import { adminTokenRoutes } from './tokens.js';
import { adminUserRoutes } from './users.js';

// Synapse's admin API (`/_synapse/admin`), one file per part of its documentation.
export function synapseAdminRoutes(services: Services): RouteDefinition[] {
  return [
    ...adminUserRoutes(services),
    ...adminRoomRoutes(services),
    ...adminMediaRoutes(services),
    ...adminReportRoutes(services),
    ...adminTokenRoutes(services),
    ...adminServerRoutes(services),
  ];
}
