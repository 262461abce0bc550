/**
 * Inbound transactions (spec: Server-Server API, "Transactions", PUT /_matrix/federation/v1/send/{txnId}):
 * a retried (origin, txnId) gets the stored answer without being processed again, concurrent retries share
 * one processing; PDUs are grouped by room, each room's PDUs go through the pipeline in order under the
 * room's lock, rooms in parallel. EDUs follow the PDUs (so a receipt finds its event), through `eduHandler`.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import { getRoomVersion, DEFAULT_ROOM_VERSION, type RoomVersion } from '../rooms/roomVersions.js';
import type { Database } from '../storage/database.js';
import { getInboundTransaction, putInboundTransaction } from '../storage/repositories/federationTxns.js';
import { fallbackEventId, type FederatedRooms, type InboundPipeline, type PduResult } from './pipeline.js';
import { dict } from '../util/dict.js';

export const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;

export interface SendResult {
  pdus: Record<string, PduResult>;
}

export interface ReceiverDeps {
  db: Database;
  rooms: Pick<FederatedRooms, 'roomVersion'>;
  pipeline: InboundPipeline;
  clock: { now(): number };
  logger: Logger;
}

export class TransactionReceiver {
  private readonly inFlight = new Map<string, Promise<SendResult>>();
  /** Handles a transaction's EDUs (set by federation/edus); never fails the transaction. Unset: ignored. */
  eduHandler: ((origin: string, edus: readonly unknown[]) => Promise<void>) | undefined;
  /** Counts new (not repeated) transactions' PDUs and EDUs (src/metrics). */
  metrics: { transactionReceived(pdus: number, edus: number): void } | undefined;

  constructor(private readonly deps: ReceiverDeps) {}

  receive(origin: string, txnId: string, body: { pdus: unknown[]; edus?: unknown[] | undefined }): Promise<SendResult> {
    const key = `${origin}\u0000${txnId}`;
    const running = this.inFlight.get(key);
    if (running) return running;
    const p = this.process(origin, txnId, body).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private async process(origin: string, txnId: string, body: { pdus: unknown[]; edus?: unknown[] | undefined }): Promise<SendResult> {
    const { db, logger } = this.deps;
    const earlier = await getInboundTransaction(db.knex, origin, txnId);
    if (earlier !== undefined) return earlier as SendResult;
    this.metrics?.transactionReceived(body.pdus.length, body.edus?.length ?? 0);

    const byRoom = new Map<string, unknown[]>();
    const pdus = dict<PduResult>();
    for (const raw of body.pdus) {
      const roomId = raw && typeof raw === 'object' ? (raw as { room_id?: unknown }).room_id : undefined;
      if (typeof roomId !== 'string') {
        pdus[fallbackEventId(raw, undefined)] = { error: 'PDU without room_id' };
        continue;
      }
      const list = byRoom.get(roomId) ?? [];
      list.push(raw);
      byRoom.set(roomId, list);
    }
    await Promise.all(
      [...byRoom].map(([roomId, list]) =>
        this.deps.pipeline.withRoomLock(roomId, async () => {
          let version: RoomVersion;
          try {
            version = await this.deps.rooms.roomVersion(db.knex, roomId);
          } catch {
            const guess = getRoomVersion(DEFAULT_ROOM_VERSION);
            for (const raw of list) pdus[fallbackEventId(raw, guess)] = { error: `Unknown room ${roomId}` };
            logger.info({ step: 'room', origin, roomId, count: list.length }, 'inbound PDUs for an unknown room dropped');
            return;
          }
          for (const raw of list) {
            const { eventId, result } = await this.deps.pipeline.processPdu(origin, roomId, version, raw);
            pdus[eventId] = result;
          }
        }),
      ),
    );
    if (body.edus?.length) {
      if (this.eduHandler) await this.eduHandler(origin, body.edus).catch((err) => logger.warn({ err, origin, txnId }, 'inbound EDUs failed'));
      else logger.debug({ origin, txnId, edus: body.edus.length }, 'inbound EDUs ignored (no handler)');
    }
    const result: SendResult = { pdus };
    // Stored after processing, not with it: a crash in between only reprocesses the retried transaction,
    // which is harmless (PDUs are stored once per event id, to-device once per message_id, the rest are state).
    await putInboundTransaction(db.knex, origin, txnId, result, this.deps.clock.now());
    return result;
  }
}

const sendBody = z
  .object({
    origin: z.string(),
    origin_server_ts: z.number().int(),
    pdus: z.array(z.unknown()).max(50),
    edus: z.array(z.unknown()).max(100).optional(),
  })
  .loose();

export function transactionRoutes(receiver: TransactionReceiver): RouteDefinition[] {
  return [
    // Spec: PUT /_matrix/federation/v1/send/{txnId}
    defineRoute({
      method: 'PUT',
      prefixes: FEDERATION_V1,
      path: '/send/:txnId',
      auth: 'server',
      body: sendBody,
      handler: ({ params, body, server }) => receiver.receive(server.origin, params.txnId!, body),
    }),
  ];
}
