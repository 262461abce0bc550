import type { Services } from '../homeserver.js';
import type { RouteDefinition } from '../http/route.js';
import { versionRoutes } from './versions.js';

// One file per spec group; each returns its routes given the services.
export function clientRoutes(services: Services): RouteDefinition[] {
  return [...versionRoutes(services)];
}
