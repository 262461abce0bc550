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
import { eventApiRoutes } from './eventApi.js';
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
  const pipeline = new InboundPipeline({ db, rooms, keyStore: federation.keyStore, client: federation.client, serverName, logger: log }, options.pipeline);
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
    joinLocally: (actor, roomId, content) => {
      const { reason, ...rest } = content;
      return rooms.join(actor, roomId, typeof reason === 'string' ? reason : undefined, rest);
    },
  });
  outbox.attach();
  rooms.setRemoteJoiner((actor, roomIdOrAlias, content) => joiner.join(actor, roomIdOrAlias, content));

  const routes = [
    ...transactionRoutes(receiver),
    ...eventApiRoutes({ db, rooms, serverName, clock }),
    ...membershipApiRoutes({ db, rooms, keyStore: federation.keyStore, pipeline, serverName, logger: log }),
  ];
  return {
    outbox,
    sender,
    pipeline,
    receiver,
    joiner,
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
