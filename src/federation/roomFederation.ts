/**
 * Room federation, composed once per homeserver: the outbox fed by committed local events, the transaction
 * sender, the inbound pipeline and /send, the serving endpoints, the resident and joining sides of joins.
 * createHomeserver starts it after the routes are mounted and stops it before the database closes.
 */
import type { Logger } from 'pino';
import type { SigningKey } from '../crypto/signing.js';
import type { RouteDefinition } from '../http/route.js';
import type { RoomService } from '../rooms/roomService.js';
import type { Database } from '../storage/database.js';
import { currentMembership } from '../storage/repositories/state.js';
import { ServerAclChecker } from './acl.js';
import { Backfiller, backfillRoutes } from './backfill.js';
import { eventApiRoutes } from './eventApi.js';
import { RemoteInviter, inviteApiRoutes } from './invites.js';
import { RemoteKnocker, knockApiRoutes } from './knocks.js';
import { RemoteLeaver, leaveApiRoutes, serversFor } from './leaves.js';
import type { FederationServices } from './index.js';
import { TransactionReceiver, transactionRoutes } from './inbound.js';
import { RemoteJoiner } from './joins.js';
import { membershipApiRoutes } from './membershipApi.js';
import { OutboxProducer } from './outbox.js';
import { InboundPipeline, type PipelineLimits } from './pipeline.js';
import { TransactionSender, type SenderOptions } from './sender.js';

export interface RoomFederationDeps {
  db: Database;
  rooms: RoomService;
  federation: Pick<FederationServices, 'client' | 'keyStore'>;
  serverName: string;
  signingKey: SigningKey;
  clock: { now(): number };
  logger: Logger;
}

export interface RoomFederationOptions {
  sender?: Partial<SenderOptions>;
  pipeline?: Partial<PipelineLimits>;
}

export interface RoomFederation {
  outbox: OutboxProducer;
  sender: TransactionSender;
  pipeline: InboundPipeline;
  receiver: TransactionReceiver;
  joiner: RemoteJoiner;
  inviter: RemoteInviter;
  leaver: RemoteLeaver;
  knocker: RemoteKnocker;
  backfiller: Backfiller;
  /** Server ACLs of rooms: also for the EDU handlers (typing, receipts from denied servers are dropped). */
  acl: ServerAclChecker;
  routes: RouteDefinition[];
  /** A verified request from `origin` arrived: it is up, so its backoff ends. */
  markAlive(origin: string): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createRoomFederation(deps: RoomFederationDeps, options: RoomFederationOptions = {}): RoomFederation {
  const { db, rooms, federation, serverName, signingKey, clock, logger } = deps;
  const log = logger.child({ module: 'federation' });
  const sender = new TransactionSender({ db, client: federation.client, serverName, clock, logger: log }, options.sender);
  const outbox = new OutboxProducer({ db, rooms, serverName, clock, logger: log, wake: (d) => sender.wake(d) });
  const acl = new ServerAclChecker({ db, rooms, serverName });
  const pipeline = new InboundPipeline(
    { db, rooms, keyStore: federation.keyStore, client: federation.client, serverName, logger: log, serverAllowed: (roomId, server) => acl.allowed(roomId, server) },
    options.pipeline,
  );
  const receiver = new TransactionReceiver({ db, rooms, pipeline, clock, logger: log });
  const joiner = new RemoteJoiner({
    db,
    rooms,
    client: federation.client,
    keyStore: federation.keyStore,
    serverName,
    signingKey,
    clock,
    logger: log,
    markDelivered: (eventId, destination) => outbox.markDelivered(eventId, destination),
    joinLocally: (actor, roomId, content, via) => rooms.join(actor, roomId, typeof content.reason === 'string' ? content.reason : undefined, via, content),
  });
  const common = { db, client: federation.client, keyStore: federation.keyStore, serverName, signingKey, clock, logger: log };
  const inviter = new RemoteInviter({ ...common, rooms, pipeline });
  const leaver = new RemoteLeaver({ ...common, rooms });
  const knocker = new RemoteKnocker({ ...common, rooms, joiner });
  const backfiller = new Backfiller({ ...common, rooms, pipeline });
  outbox.attach();
  rooms.setRemoteJoiner(async (actor, roomIdOrAlias, content, given = []) => {
    // Joining a room we were invited to (or knocked on) from another server: try that server too.
    let via: string[] = [...given];
    if (roomIdOrAlias.startsWith('!')) {
      const m = await currentMembership(db.knex, roomIdOrAlias, actor.userId);
      const ev = m && (m.membership === 'invite' || m.membership === 'knock') ? await rooms.events.get(db.knex, m.eventId) : undefined;
      if (ev) via = [...serversFor(ev.pdu, roomIdOrAlias, serverName), ...via];
    }
    return joiner.join(actor, roomIdOrAlias, content, via);
  });
  rooms.setRemoteInviter(inviter.invite);
  rooms.setRemoteLeaver(leaver.leave);
  rooms.remoteKnocker = knocker.knock;
  rooms.remoteAliasResolver = (alias) => joiner.resolveAlias(alias);
  rooms.reader.setBackfiller(backfiller.backfill);

  const resident = { db, rooms, keyStore: federation.keyStore, pipeline, acl, logger: log };
  const routes = [
    ...transactionRoutes(receiver),
    ...eventApiRoutes({ db, rooms, serverName, clock, acl }),
    ...membershipApiRoutes({ ...resident, serverName }),
    ...inviteApiRoutes({ db, rooms, keyStore: federation.keyStore, acl, serverName, logger: log }),
    ...leaveApiRoutes(resident),
    ...knockApiRoutes(resident),
    ...backfillRoutes({ db, rooms, acl, serverName, clock }),
  ];
  return {
    outbox,
    sender,
    pipeline,
    receiver,
    joiner,
    inviter,
    leaver,
    knocker,
    backfiller,
    acl,
    routes,
    markAlive: (origin) => sender.markAlive(origin),
    start: () => sender.start(),
    async stop() {
      // Closed first: a request cut short by closing the client is not recorded as a failure.
      const stopped = sender.stop();
      await outbox.idle();
      await stopped;
    },
  };
}
