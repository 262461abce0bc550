import { MatrixError, forbidden } from '../errors.js';
import type { Requester } from '../http/route.js';
import type { UserService } from '../users/userService.js';
import type { LoginRequest } from '../users/loginService.js';
import { StageFailed } from '../users/uia.js';
import { identifiedUser } from '../users/uiaStages.js';
import type { Logger } from 'pino';
import type { HomeserverConfig } from '../config/schema.js';
import { AppservicePinger } from './ping.js';
import { AppserviceQueries } from './queries.js';
import { loadRegistrations } from './registration.js';
import { AppserviceRegistry } from './registry.js';

// Spec: Application Service API, "Client-Server API Extensions": as_token authentication, identity
// assertion (`user_id`, MSC3202 `device_id`), exclusive namespaces, m.login.application_service.

function queryString(query: Record<string, unknown>, name: string): string | undefined {
  const v = query[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Resolves an as_token (and `user_id` / device masquerading) to a Requester; undefined for other tokens. */
export function appserviceAuthenticator(registry: AppserviceRegistry, users: UserService) {
  return async (token: string, ctx: { query: Record<string, unknown>; path?: string }): Promise<Requester | undefined> => {
    const reg = registry.byAsToken(token);
    if (!reg) return undefined;
    const sender = registry.senderUserId(reg);
    const userId = queryString(ctx.query, 'user_id') ?? sender;
    if (userId !== sender) {
      if (!registry.isInterestedInUser(reg, userId)) throw forbidden('Application service cannot masquerade as this user');
      if (!(await users.getUser(userId))) {
        // Registering the user is how it comes to exist: /register ignores user_id, as Synapse does
        // (bridge SDKs add it to every request of a ghost's intent).
        if (ctx.path?.endsWith('/register')) return { userId: sender, deviceId: undefined, tokenId: undefined, isGuest: false, appserviceId: reg.id };
        throw forbidden('Application service has not registered this user');
      }
    }
    let deviceId: string | undefined;
    const wantedDevice = queryString(ctx.query, 'org.matrix.msc3202.device_id') ?? queryString(ctx.query, 'device_id');
    if (wantedDevice !== undefined) {
      if (!(await users.getDevice(userId, wantedDevice))) {
        throw forbidden('Application service is trying to use a device that does not exist');
      }
      deviceId = wantedDevice;
    }
    return { userId, deviceId, tokenId: undefined, isGuest: false, appserviceId: reg.id };
  };
}

/** M_EXCLUSIVE: others may not take a reserved user ID; a service may only register inside its namespace. */
export function exclusiveNamespaceCheck(registry: AppserviceRegistry) {
  return (userId: string, appserviceId: string | undefined): boolean => {
    const owner = registry.exclusiveOwner(userId);
    if (appserviceId === undefined) return owner !== undefined;
    const reg = registry.byId(appserviceId);
    if (!reg) return owner !== undefined; // a service this registry does not know: only guard our namespaces
    if (!registry.isInterestedInUser(reg, userId)) return true;
    return owner !== undefined && owner.id !== appserviceId;
  };
}

/**
 * Spec (v1.2): login with `type: m.login.application_service` and the as_token as access token.
 * Needs the token the client presented, passed by the login route as `ctx.accessToken`.
 */
export function applicationServiceLogin(registry: AppserviceRegistry, users: UserService, serverName: string) {
  return async (body: LoginRequest, ctx: { accessToken?: string | undefined }): Promise<string> => {
    if (ctx.accessToken === undefined) throw new MatrixError('M_MISSING_TOKEN', 'Missing application service token', 401);
    const reg = registry.byAsToken(ctx.accessToken);
    if (!reg) throw new MatrixError('M_UNKNOWN_TOKEN', 'Unknown application service token', 401);
    let userId: string | undefined;
    try {
      userId = identifiedUser(body, serverName);
    } catch (err) {
      if (err instanceof StageFailed) throw new MatrixError(err.errcode, err.message, 400);
      throw err;
    }
    if (userId === undefined) throw new MatrixError('M_MISSING_PARAM', "Missing 'identifier'");
    if (!registry.isInterestedInUser(reg, userId)) throw forbidden('User is not in the application service namespace');
    const user = await users.getUser(userId);
    if (!user) throw forbidden('Unknown user');
    if (user.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 'This account has been deactivated');
    return userId;
  };
}

/** Creates each service's sender user when missing (start-up). */
export async function ensureSenders(registry: AppserviceRegistry, users: UserService): Promise<void> {
  for (const reg of registry.all()) {
    if (await users.getUser(registry.senderUserId(reg))) continue;
    try {
      await users.registration.createAccount({ localpart: reg.senderLocalpart, appserviceId: reg.id });
    } catch (err) {
      if (!(err instanceof MatrixError && err.errcode === 'M_USER_IN_USE')) throw err;
    }
  }
}


/** Homeserver → service calls made on behalf of clients (not the transaction pusher). */
export interface AppserviceClient {
  queries: AppserviceQueries;
  pinger: AppservicePinger;
}

/**
 * Loads the registration files (throws RegistrationError naming file and field), subscribes to the user
 * hooks (as_token auth, M_EXCLUSIVE, m.login.application_service) and creates missing sender users.
 */
export async function createAppservices(deps: { config: HomeserverConfig; serverName: string; logger: Logger }, users: UserService): Promise<{ registry: AppserviceRegistry; client: AppserviceClient }> {
  const registry = new AppserviceRegistry(loadRegistrations(deps.config.app_service_config_files), deps.serverName);
  users.hooks.authenticators.push(appserviceAuthenticator(registry, users));
  users.hooks.exclusiveNamespaces.push(exclusiveNamespaceCheck(registry));
  if (registry.all().length > 0) {
    users.login.addLoginType('m.login.application_service', applicationServiceLogin(registry, users, deps.serverName));
  }
  await ensureSenders(registry, users);
  for (const reg of registry.all()) {
    const { users: u, aliases, rooms } = reg.namespaces;
    deps.logger.info({ id: reg.id, url: reg.url, namespaces: { users: u.length, aliases: aliases.length, rooms: rooms.length }, file: reg.file }, 'application service loaded');
  }
  return { registry, client: { queries: new AppserviceQueries(registry, deps.logger), pinger: new AppservicePinger() } };
}

/** RoomService.aliasHooks: M_EXCLUSIVE for aliases reserved by another service; alias queries. */
export function aliasHooks(registry: AppserviceRegistry, queries: AppserviceQueries) {
  return {
    isExclusive(alias: string, userId: string): boolean {
      const owner = registry.exclusiveAliasOwner(alias);
      return owner !== undefined && !registry.isInterestedInUser(owner, userId);
    },
    query: (alias: string) => queries.queryAlias(alias),
    /** Whether the application service `appserviceId` claims `alias` in its namespace. */
    inNamespaceOf(alias: string, appserviceId: string): boolean {
      const reg = registry.byId(appserviceId);
      return reg !== undefined && registry.isInterestedInAlias(reg, alias);
    },
  };
}

/**
 * Spec: Application Service API, "Querying users": before answering "unknown user" for a local user ID
 * inside a service's namespace, ask the service. True when the user exists afterwards.
 */
export async function ensureUserQueried(users: UserService, queries: AppserviceQueries, userId: string): Promise<boolean> {
  if (!users.isLocalUserId(userId)) return false;
  if (await users.getUser(userId)) return true;
  return (await queries.queryUser(userId)) && (await users.getUser(userId)) !== undefined;
}
