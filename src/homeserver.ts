import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import type { Logger } from 'pino';
import { parseDuration, type HomeserverConfig, type ResourceName } from './config/schema.js';
import { loadOrCreateSigningKey } from './config/signingKey.js';
import type { SigningKey } from './crypto/signing.js';
import { clientRoutes } from './clientapi/index.js';
import { createFederation, type FederationServices } from './federation/index.js';
import { federationRoutes } from './federation/routes.js';
import { mediaApiRoutes } from './federation/mediaApi.js';
import { createRoomFederation, type RoomFederation } from './federation/roomFederation.js';
import { publicRoomsApiRoutes, remoteDirectory } from './federation/publicRoomsApi.js';
import { createFederationEdus, type FederationEdus } from './federation/edus/index.js';
import { createIdentity, type IdentityServices } from './identity/index.js';
import { thirdPartyInviteApiRoutes } from './federation/thirdPartyInviteApi.js';
import { serveHealth } from './http/health.js';
import { DEFAULT_RESOURCES, ListenerProfiles, resourceGate, type ListenerProfile } from './http/listeners.js';
import { InFlightRequests } from './http/inFlight.js';
import { applyCors, errorHandling, mountRoutes, refuseUnrecognized, requestLogging } from './http/mount.js';
import { RateLimiter } from './http/rateLimit.js';
import { ConnectionLimiter, timeoutOptions } from './http/transport.js';
import type { RouteDefinition } from './http/route.js';
import { TransactionStore } from './http/transactions.js';
import { KeyBackupService } from './e2ee/keyBackupService.js';
import { DeactivationService } from './deactivation/deactivationService.js';
import { createE2ee, type E2eeServices } from './e2ee/index.js';
import { createEdus, type EduServices } from './edus/index.js';
import { createLogger } from './logger.js';
import { HomeserverMetrics } from './metrics/metrics.js';
import { watchQueues } from './metrics/gauges.js';
import { serveMetrics } from './metrics/serve.js';
import { createPush, type PushService } from './push/index.js';
import { readPositions } from './storage/repositories/receipts.js';
import { MediaService } from './media/mediaService.js';
import { eraseUserMedia } from './media/erasure.js';
import { AdminMedia } from './media/adminMedia.js';
import { RoomService } from './rooms/roomService.js';
import { RoomAdmin } from './rooms/roomAdmin.js';
import { EventReports } from './rooms/eventReports.js';
import { RoomDeletions } from './rooms/roomDeletion.js';
import { RetentionService } from './rooms/retentionService.js';
import { SelfDestructingMessages } from './rooms/selfDestruct.js';
import { createDirectory, type DirectoryServices } from './directory/index.js';
import { UpgradedRoomState } from './directory/upgradedRoomState.js';
import { createRelations, type RelationService, type SearchService } from './relations/index.js';
import { GuestAccessEnforcer } from './rooms/guestAccess.js';
import { describeDatabase, openDatabase, type Database } from './storage/database.js';
import { ensurePrivateDir, tightenDir } from './storage/fileModes.js';
import { claimServerName } from './storage/serverIdentity.js';
import { Notifier } from './sync/notifier.js';
import { DeviceListsProvider } from './sync/providers/deviceLists.js';
import { PresenceProvider } from './sync/providers/presence.js';
import { ReceiptsProvider } from './sync/providers/receipts.js';
import { TypingProvider } from './sync/providers/typing.js';
import { ToDeviceProvider } from './sync/providers/toDevice.js';
import { SyncService } from './sync/syncService.js';
import { SlidingSyncService } from './sync/sliding/slidingSyncService.js';
import { UserService } from './users/userService.js';
import { AdminUsers } from './users/adminUsers.js';
import { ClientIpRetention } from './users/clientIpRetention.js';
import { aliasHooks, createAppservices, ensureUserQueried, type AppserviceClient } from './appservice/auth.js';
import { AppserviceThirdParty } from './appservice/thirdParty.js';
import type { AppserviceRegistry } from './appservice/registry.js';
import { AppservicePusher } from './appservice/pusher.js';
import type { Clock } from './serviceDeps.js';

export type { Clock } from './serviceDeps.js';

/** Everything a route handler may use; built once per homeserver, never a module-level singleton. */
export interface Services {
  config: HomeserverConfig;
  serverName: string;
  publicBaseUrl: string;
  /** The host[:port] other servers reach us on (.well-known/matrix/server). */
  federationAuthority: string;
  logger: Logger;
  db: Database;
  signingKey: SigningKey;
  clock: Clock;
  notifier: Notifier;
  transactions: TransactionStore;
  users: UserService;
  rooms: RoomService;
  sync: SyncService;
  slidingSync: SlidingSyncService;
  keyBackup: KeyBackupService;
  e2ee: E2eeServices;
  edus: EduServices;
  media: MediaService;
  push: PushService;
  directory: DirectoryServices;
  relations: RelationService;
  search: SearchService;
  federation: FederationServices;
  /** Room federation: outbox, transaction sender, inbound pipeline, joins. */
  roomFederation: RoomFederation;
  /** EDUs over federation (typing, receipts, presence, device lists, to-device) and remote E2EE keys. */
  federationEdus: FederationEdus;
  /** Identity servers: 3PID bindings and third-party invites. */
  identity: IdentityServices;
  /** Application service registrations (app_service_config_files) and their namespaces. */
  appservices: AppserviceRegistry;
  /** Homeserver → application service queries and pings made for clients. */
  appserviceClient: AppserviceClient;
  /** Application service transactions: the durable per-service queue and its sender. */
  appservicePusher: AppservicePusher;
  /** Account deactivation and erasure as durable jobs. */
  deactivation: DeactivationService;
  /** Message retention: purge jobs and interrupted purges (the `retention` config). */
  retention: RetentionService;
  /** MSC2228: messages pruned at the time their sender set. */
  selfDestruct: SelfDestructingMessages;
  /** Synapse's admin API: accounts as an admin sees them. */
  adminUsers: AdminUsers;
  /** Prometheus metrics of this homeserver (served on listeners with the metrics resource). */
  metrics: HomeserverMetrics;
  /** Synapse's admin API: rooms as an admin sees them, room admins. */
  roomAdmin: RoomAdmin;
  /** Synapse's admin API: room deletions (shutdown, block, purge) with their status. */
  roomDeletions: RoomDeletions;
  /** Synapse's admin API: media listing, quarantine and deletion. */
  adminMedia: AdminMedia;
  /** Synapse's admin API: event reports. */
  eventReports: EventReports;
}

export interface Homeserver {
  app: Express;
  services: Services;
  /** Every client and federation route mounted on `app` (the fuzz test drives each one). */
  routes: readonly RouteDefinition[];
  /**
   * Starts listening (HTTPS when `tls` is given); port 0 picks a free port. Returns the bound port.
   * `listener.x_forwarded`: requests on this listener take their address from X-Forwarded-For;
   * `listener.resources`: what it serves (default client and federation; a metrics listener: metrics).
   */
  listen(
    port?: number,
    host?: string,
    tls?: { certificatePath: string; privateKeyPath: string },
    listener?: ListenOptions,
  ): Promise<number>;
  close(): Promise<void>;
}

export interface ListenOptions {
  x_forwarded?: boolean;
  resources?: readonly ResourceName[];
}

// A sync woken by a commit waits this long at most for that event's notification counts.
const PUSH_COUNT_WAIT_MS = 50;

export interface HomeserverOptions {
  logger?: Logger;
  clock?: Clock;
}

export async function createHomeserver(config: HomeserverConfig, options: HomeserverOptions = {}): Promise<Homeserver> {
  const logger = options.logger ?? createLogger(config.log_level);
  const clock = options.clock ?? { now: () => Date.now() };
  const db = await openDatabase(config.database);
  try {
    await claimServerName(db.knex, config.server_name, describeDatabase(config.database));
  } catch (err) {
    await db.close();
    throw err;
  }
  // The media store is the server's own: owner-only, like the database and the signing key.
  ensurePrivateDir(config.media_store_path);
  tightenDir(config.media_store_path);
  const signingKey = loadOrCreateSigningKey(config.signing_key_path);
  const firstPort = config.listeners.find((l) => l.type === 'http')?.port ?? 8008;
  const publicBaseUrl = (config.public_baseurl ?? `http://${config.server_name}:${firstPort}`).replace(/\/$/, '');
  const notifier = new Notifier();
  const metrics = new HomeserverMetrics(config.server_name, { processMetrics: config.enable_metrics });
  notifier.metrics = metrics.sync;

  const base = { config, serverName: config.server_name, logger, db, clock, notifier, signingKey };
  const users = new UserService(base);
  let appservices: Awaited<ReturnType<typeof createAppservices>>;
  try {
    appservices = await createAppservices(base, users);
  } catch (err) {
    await db.close();
    throw err;
  }
  const rooms = new RoomService(base);
  rooms.aliasHooks = aliasHooks(appservices.registry, appservices.client.queries);
  rooms.queryUser = (userId) => ensureUserQueried(users, appservices.client.queries, userId);
  const { relations, search } = await createRelations(base, rooms);
  const guestAccess = new GuestAccessEnforcer(base, rooms);
  rooms.onCommitted((result) => guestAccess.onCommitted(result));
  const e2ee = createE2ee(base, users);
  const sync = new SyncService({ ...base, rooms });
  rooms.onCommitted((result) => sync.peeks.onCommitted(result));
  users.onDevicesDeleted.push((userId, deviceIds) => sync.peeks.onDevicesDeleted(userId, deviceIds));
  sync.registerProvider(new ToDeviceProvider({ toDevice: e2ee.toDevice, deviceKeys: e2ee.deviceKeys }));
  sync.registerProvider(new DeviceListsProvider(e2ee.deviceLists));
  const edus = createEdus({ ...base, rooms, accountData: sync.accountData });
  const push = createPush(base, { rooms, users, accountData: sync.accountData }, { legacyMentionRules: config.push.legacy_mention_rules });
  push.readPositions = readPositions;
  sync.setAccountDataDefaults(async (userId) => [{ type: 'm.push_rules', content: await push.rules.accountDataContent(userId) }]);
  // As Synapse: a read receipt of the user updates the badge on their devices (a push of counts only).
  edus.receipts.onLocalReceipt.push((r) => {
    if (r.receiptType === 'm.read') void push.sendBadge(r.userId);
  });
  sync.setNotificationCounter(async (userId, roomIds, options) => {
    // Notifications are evaluated just after each commit; a sync woken by that commit waits briefly for them.
    await Promise.race([push.idle(), new Promise((r) => setTimeout(r, PUSH_COUNT_WAIT_MS).unref())]);
    return push.counts(userId, roomIds, options);
  });
  sync.registerProvider(new ReceiptsProvider({ db, receipts: edus.receipts }));
  sync.registerProvider(new TypingProvider({ db, typing: edus.typing }));
  sync.registerProvider(new PresenceProvider({ db, presence: edus.presence }));
  const slidingSync = new SlidingSyncService({ ...base, rooms, sync, deviceKeys: e2ee.deviceKeys });
  users.onDevicesDeleted.push((userId, deviceIds) => slidingSync.onDevicesDeleted(userId, deviceIds));
  const directory = createDirectory(base, { rooms, users });
  const upgradedRoomState = new UpgradedRoomState({ ...base, rooms, tags: directory.tags, accountData: sync.accountData });
  rooms.onCommitted((result) => upgradedRoomState.onCommitted(result));
  const federation = createFederation(base);
  const roomFederation = createRoomFederation({ ...base, rooms, federation });
  directory.publicRooms.remote = remoteDirectory(federation.client);
  directory.thirdParty.setProvider(new AppserviceThirdParty(appservices.registry, logger));
  const federationEdus = createFederationEdus({ ...base, rooms, users, e2ee, edus, client: federation.client, roomFederation });
  const deactivation = new DeactivationService({
    ...base,
    rooms,
    users,
    presence: edus.presence,
    deviceLists: e2ee.deviceLists,
    afterCommitIdle: async () => {
      await relations.indexer.idle();
      await push.idle();
    },
  });
  const media = new MediaService(base, federation.client);
  const services: Services = {
    ...base,
    publicBaseUrl,
    federationAuthority: config.server_name.includes(':') ? config.server_name : `${config.server_name}:8448`,
    transactions: new TransactionStore(db.knex),
    users,
    rooms,
    sync,
    slidingSync,
    keyBackup: new KeyBackupService({ db }),
    e2ee,
    edus,
    media,
    push,
    directory,
    relations,
    search,
    federation,
    roomFederation,
    federationEdus,
    identity: createIdentity(base, { rooms, federation: federation.client }),
    appservices: appservices.registry,
    appserviceClient: appservices.client,
    appservicePusher: new AppservicePusher({ ...base, rooms, registrations: appservices.registry, edus, e2ee }),
    deactivation,
    retention: new RetentionService({ ...base, rooms }),
    selfDestruct: new SelfDestructingMessages({ ...base, rooms, enabled: config.enable_ephemeral_messages }),
    adminUsers: new AdminUsers({ ...base, users, rooms, deactivation }),
    metrics,
    roomAdmin: new RoomAdmin({ ...base, rooms }),
    roomDeletions: new RoomDeletions({ ...base, rooms }),
    adminMedia: new AdminMedia({ ...base, media }),
    eventReports: new EventReports(base),
  };
  rooms.onCommitted((result) => metrics.events.persisted(result.events.length));
  roomFederation.sender.metrics = metrics.federation;
  roomFederation.receiver.metrics = metrics.federation;
  services.appservicePusher.sender.metrics = metrics.appservice;
  push.pushers.delivery.metrics = metrics.push;
  watchQueues(metrics, { db, notifier, federationSender: roomFederation.sender, appservices: appservices.registry });
  users.account.deactivation = services.deactivation;
  services.media.start();
  // Erasure deletes the user's uploads; the hook may run twice (after a crash), which eraseUserMedia allows.
  users.onDeactivated.push(async (userId, { erase }) => {
    if (erase) await eraseUserMedia({ db, store: services.media.store, logger }, userId);
  });
  const clientIps = new ClientIpRetention(base);
  clientIps.start();
  services.retention.start();
  services.selfDestruct.start();
  const retentionFloor = async (roomId: string) => {
    const max = await services.retention.maxLifetimeOf(roomId);
    return max === null ? null : clock.now() - max;
  };
  roomFederation.backfiller.setHistoryFloor(retentionFloor);
  rooms.reader.setRetentionFloor(retentionFloor);

  const app = express();
  app.disable('x-powered-by');
  // X-Forwarded-For is trusted per listener (ListenerProfiles), never app-wide.
  app.set('trust proxy', false);
  const listeners = new ListenerProfiles();
  app.set('query parser', 'simple');
  const inFlight = new InFlightRequests();
  requestLogging(app, logger, { logRequests: config.log_requests, metrics, clientAddress: (req) => listeners.addressOf(req) });
  serveHealth(app);
  app.use(resourceGate(listeners, refuseUnrecognized));
  if (config.enable_metrics) serveMetrics(app, metrics);
  applyCors(app);
  const limiters = config.rc_enabled
    ? {
        message: new RateLimiter(config.rc_message),
        registration: new RateLimiter(config.rc_registration),
        login: new RateLimiter(config.rc_login.address),
      }
    : {};
  users.registration.limiter = limiters.registration;
  const routes = [...clientRoutes(services), ...federationRoutes(services), ...mediaApiRoutes(services.media, services.serverName), ...roomFederation.routes, ...publicRoomsApiRoutes(directory.publicRooms), ...federationEdus.routes, ...thirdPartyInviteApiRoutes(services.identity.invites)];
  mountRoutes(app, routes, {
    logger,
    authenticate: (token, ctx) => users.authenticate(token, ctx),
    isRateLimitExempt: (requester) => appservices.registry.isRateLimitExempt(requester.appserviceId),
    rateLimiters: limiters,
    maxBodyBytes: Math.max(config.max_request_body_size, 65536),
    bodyStore: services.media.store,
    inFlight,
    clientAddress: (req) => listeners.addressOf(req),
    metrics,
    authenticateServer: async (req) => {
      const server = await federation.authenticator.authenticate(req);
      roomFederation.markAlive(server.origin);
      return server;
    },
  });
  errorHandling(app, logger);
  await roomFederation.start();
  await services.appservicePusher.start();
  // A deactivation the previous process did not finish continues now.
  services.deactivation.resume();
  services.roomDeletions.resume();

  const servers: Server[] = [];
  const connections = new ConnectionLimiter({
    perAddress: config.max_connections_per_address,
    total: config.max_connections,
    exempt: config.max_connections_per_address_exempt,
  });
  return {
    app,
    services,
    routes,
    listen(port = firstPort, host = '127.0.0.1', tls, listener) {
      return new Promise((resolve, reject) => {
        const profile: ListenerProfile = { xForwarded: listener?.x_forwarded ?? false, resources: new Set(listener?.resources ?? DEFAULT_RESOURCES) };
        const handler: RequestListener = (req, res) => {
          listeners.mark(req, profile);
          app(req, res);
        };
        const options = timeoutOptions(config.http_timeouts);
        const server = tls
          ? createHttpsServer({ ...options, cert: readFileSync(tls.certificatePath), key: readFileSync(tls.privateKeyPath) }, handler)
          : createHttpServer(options, handler);
        // "Expect: 100-continue" is answered by the routes once the token is checked (src/http/body.ts).
        server.on('checkContinue', handler);
        // Behind a proxy every connection comes from the proxy: only the total cap applies there.
        connections.attach(server, { perAddress: !listener?.x_forwarded });
        server.listen(port, host);
        server.once('listening', () => resolve((server.address() as AddressInfo).port));
        server.once('error', reject);
        servers.push(server);
      });
    },
    async close() {
      // Stop accepting, let long-polls return and running requests finish, then close the database.
      const closed = servers.map((s) => new Promise<void>((r) => s.close(() => r())));
      for (const s of servers) s.closeIdleConnections();
      notifier.wakeAll();
      // Half the shutdown budget for requests; the other half for the background work stopped below.
      await inFlight.drained(parseDuration(config.shutdown_timeout) / 2);
      for (const s of servers) s.closeAllConnections();
      await Promise.all(closed);
      await services.deactivation.close();
      await services.roomDeletions.close();
      edus.close();
      push.close();
      await services.retention.stop();
      await services.selfDestruct.stop();
      await relations.indexer.idle();
      await guestAccess.idle();
      await sync.peeks.idle();
      await federationEdus.close();
      await services.appservicePusher.stop();
      const federationStopped = roomFederation.stop();
      federation.close();
      services.identity.close();
      await federationStopped;
      await services.media.close();
      await clientIps.stop();
      await db.close();
    },
  };
}
