/**
 * Knocking through another server (spec: Server-Server API, "Knocking on rooms"; make_knock / send_knock v1).
 *
 * Resident side: make_knock hands out a knock template (room versions with knocking only), send_knock accepts
 * the signed knock through the one append path and answers with the room's stripped state.
 *
 * Knocking side (RemoteKnocker, behind POST /knock/{roomIdOrAlias} for rooms this server does not have): the
 * alias is resolved through its server, a template is asked of the given servers (`via` / `server_name`), the
 * room's server and the alias's servers, filled in, signed and sent; the knock is stored as the user's
 * out-of-band membership with `knock_room_state`, which /sync shows in `rooms.knock`.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { SigningKey } from '../crypto/signing.js';
import { MatrixError, forbidden, notFound } from '../errors.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import type { Actor, RoomService } from '../rooms/roomService.js';
import { ROOM_VERSIONS } from '../rooms/roomVersions.js';
import type { Database } from '../storage/database.js';
import type { ServerAclChecker } from './acl.js';
import { FederationRequestError, MEMBERSHIP_FAILOVER_ERRCODES, finalRemoteRefusal, type FederationClient } from './client.js';
import { strippedRoomState } from './invites.js';
import type { RemoteJoiner } from './joins.js';
import type { KeyStore } from './keyStore.js';
import { assertVersionSupported, checkSentMembership, residentVersion, signTemplate, VIA_KEY } from './leaves.js';
import type { ResidentRooms } from './membershipApi.js';
import { checkSignatures, type InboundPipeline } from './pipeline.js';
import { isValidServerName, serverNameOf } from './serverName.js';

export const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;

export interface KnockerDeps {
  db: Database;
  rooms: Pick<RoomService, 'storeOutOfBandMembership'>;
  client: Pick<FederationClient, 'request'>;
  joiner: Pick<RemoteJoiner, 'resolveAlias'>;
  serverName: string;
  signingKey: SigningKey;
  clock: { now(): number };
  logger: Logger;
}

export class RemoteKnocker {
  constructor(private readonly deps: KnockerDeps) {}

  /** RoomService.remoteKnocker: returns the room id knocked on. */
  readonly knock = async (actor: Actor, roomIdOrAlias: string, reason: string | undefined, via: readonly string[]): Promise<string> => {
    const { client, serverName, logger } = this.deps;
    let roomId = roomIdOrAlias;
    let servers: string[] = [];
    if (roomIdOrAlias.startsWith('#')) ({ roomId, servers } = await this.deps.joiner.resolveAlias(roomIdOrAlias));
    if (!roomId.startsWith('!')) throw new MatrixError('M_INVALID_PARAM', 'Expected a room id or alias');
    const candidates = [...new Set([...via, ...servers, serverNameOf(roomId) ?? ''])].filter((s) => s !== serverName && isValidServerName(s));
    if (!candidates.length) throw notFound('No server to knock through');
    const extra: Record<string, unknown> = reason !== undefined ? { reason } : {};
    let lastError: unknown;
    for (const destination of candidates) {
      try {
        const template = await client.request<{ room_version?: unknown; event?: unknown }>({
          destination,
          method: 'GET',
          path: `/_matrix/federation/v1/make_knock/${encodeURIComponent(roomId)}/${encodeURIComponent(actor.userId)}`,
          query: { ver: [...ROOM_VERSIONS.values()].filter((v) => v.knockJoinRule).map((v) => v.id) },
        });
        const { pdu, eventId } = await signTemplate(this.deps, destination, template, { roomId, userId: actor.userId, membership: 'knock' }, extra);
        const res = await client.request<{ knock_room_state?: unknown }>({
          destination,
          method: 'PUT',
          path: `/_matrix/federation/v1/send_knock/${encodeURIComponent(roomId)}/${encodeURIComponent(eventId)}`,
          body: pdu,
        });
        const knockRoomState = Array.isArray(res?.knock_room_state) ? res.knock_room_state.filter((e) => typeof e === 'object' && e !== null) : [];
        await this.deps.rooms.storeOutOfBandMembership({ ...pdu, unsigned: { knock_room_state: knockRoomState, [VIA_KEY]: destination } }, eventId);
        logger.info({ roomId, destination }, 'knocked on a room on another server');
        return roomId;
      } catch (err) {
        lastError = err;
        logger.info({ roomId, destination, err: err instanceof Error ? err.message : String(err) }, 'remote knock attempt failed');
        // A remote 4xx reaches the client with its status and errcode, as in Synapse.
        const refusal = finalRemoteRefusal(err, MEMBERSHIP_FAILOVER_ERRCODES);
        if (refusal) throw refusal;
        if (err instanceof MatrixError && !(err instanceof FederationRequestError)) throw err;
      }
    }
    if (lastError instanceof FederationRequestError && lastError.remoteStatus === 404) throw notFound('Room not found');
    throw new MatrixError('M_UNKNOWN', 'Failed to knock through any of the servers', 502);
  };
}

export interface KnockApiDeps {
  db: Database;
  rooms: ResidentRooms & Pick<RoomService, 'reader'>;
  keyStore: Pick<KeyStore, 'verifyKeyFor'>;
  pipeline: Pick<InboundPipeline, 'withRoomLock'>;
  acl: Pick<ServerAclChecker, 'assertAllowed'>;
  logger: Logger;
}

export function knockApiRoutes(deps: KnockApiDeps): RouteDefinition[] {
  const { db, rooms, keyStore, pipeline, acl, logger } = deps;
  return [
    // Spec: GET /_matrix/federation/v1/make_knock/{roomId}/{userId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/make_knock/:roomId/:userId',
      auth: 'server',
      query: z.looseObject({ ver: z.union([z.string(), z.array(z.string())]).optional() }),
      handler: async ({ params, query, server }) => {
        const userId = params.userId!;
        if (!userId.startsWith('@') || serverNameOf(userId) !== server.origin) throw forbidden(`${server.origin} may not knock for ${userId}`);
        const version = await residentVersion(rooms, db, params.roomId!);
        await acl.assertAllowed(params.roomId!, server.origin);
        assertVersionSupported(query.ver, version);
        if (!version.knockJoinRule) throw new MatrixError('M_FORBIDDEN', `Room version ${version.id} does not support knocking`, 403);
        return rooms.joinTemplate(params.roomId!, userId, 'knock');
      },
    }),
    // Spec: PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}
    defineRoute({
      method: 'PUT',
      prefixes: FEDERATION_V1,
      path: '/send_knock/:roomId/:eventId',
      auth: 'server',
      handler: async ({ params, body, server }) => {
        const roomId = params.roomId!;
        const version = await residentVersion(rooms, db, roomId);
        await acl.assertAllowed(roomId, server.origin);
        const pdu = checkSentMembership(body, version, { roomId, eventId: params.eventId!, origin: server.origin, membership: 'knock' });
        const sig = await checkSignatures(pdu, version, (s, k, t) => keyStore.verifyKeyFor(s, k, t));
        if (sig) throw forbidden(`Invalid knock event: ${sig}`);
        const [outcome] = await pipeline.withRoomLock(roomId, () => rooms.acceptRemoteEvents(roomId, [{ pdu, eventId: params.eventId! }]));
        if (outcome && (outcome.outcome === 'rejected' || outcome.outcome === 'soft_failed')) {
          logger.info({ origin: server.origin, roomId, outcome: outcome.outcome, reason: outcome.reason }, 'send_knock refused');
          throw forbidden(`Knock refused: ${outcome.reason ?? outcome.outcome}`);
        }
        return { knock_room_state: strippedRoomState(await rooms.reader.currentState(roomId)) };
      },
    }),
  ];
}
