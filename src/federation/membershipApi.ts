/**
 * The resident server's side of joins (spec: Server-Server API, "Joining Rooms"):
 * GET /make_join/{roomId}/{userId} hands out an unsigned join template built on current state;
 * PUT /v2/send_join/{roomId}/{eventId} checks the filled-in, signed event, accepts it through the one
 * append path and answers with the state before it and its auth chain.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { MatrixError, forbidden, notFound } from '../errors.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import { checkContentHash, eventIdOf } from '../rooms/eventFormat.js';
import type { RoomVersion } from '../rooms/roomVersions.js';
import type { Database } from '../storage/database.js';
import { roomMembers } from '../storage/repositories/state.js';
import type { Pdu } from '../types/pdu.js';
import { serversInRoom } from './eventApi.js';
import type { KeyStore } from './keyStore.js';
import { federationPdu } from './outbox.js';
import { checkFormat, checkSignatures, type FederatedRooms, type InboundPipeline } from './pipeline.js';
import { formatRefusal } from './leaves.js';
import { serverNameOf } from './serverName.js';

export const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;
export const FEDERATION_V2 = ['/_matrix/federation/v2'] as const;

export interface ResidentRooms extends Pick<FederatedRooms, 'roomVersion' | 'acceptRemoteEvents'> {
  joinTemplate(
    roomId: string,
    userId: string,
    membership: 'join' | 'leave' | 'knock',
    content?: object,
  ): Promise<{ room_version: string; event: Record<string, unknown> }>;
  stateAndAuthChain(roomId: string, eventId: string): Promise<{ state: Pdu[]; authChain: Pdu[] }>;
  signAsServer(pdu: Pdu, version: RoomVersion): Pdu;
}

export interface MembershipApiDeps {
  db: Database;
  rooms: ResidentRooms;
  keyStore: Pick<KeyStore, 'verifyKeyFor'>;
  pipeline: Pick<InboundPipeline, 'withRoomLock'>;
  serverName: string;
  logger: Logger;
  /** Server ACLs (federation/acl.ts): denied servers may not join. */
  acl?: { assertAllowed(roomId: string, server: string): Promise<void> };
}

const verQuery = z.object({ ver: z.union([z.string(), z.array(z.string())]).optional() });

export function membershipApiRoutes(deps: MembershipApiDeps): RouteDefinition[] {
  const { db, rooms, keyStore, pipeline, serverName, logger, acl } = deps;
  const versionOf = async (roomId: string) => {
    try {
      return await rooms.roomVersion(db.knex, roomId);
    } catch {
      throw notFound('Unknown room');
    }
  };

  /** send_join (v1 and v2): checks the signed join, accepts it and answers the state before it. */
  const sendJoin = async (roomId: string, eventIdParam: string, body: unknown, origin: string) => {
    const version = await versionOf(roomId);
    await acl?.assertAllowed(roomId, origin);
    const format = checkFormat(body, version);
    if (format) throw formatRefusal(format);
    const { unsigned: _u, ...rest } = body as Pdu;
    let pdu = rest as Pdu;
    if (pdu.room_id !== roomId) throw new MatrixError('M_BAD_JSON', 'Event is for another room');
    if (pdu.type !== 'm.room.member' || pdu.state_key !== pdu.sender || pdu.content.membership !== 'join') {
      throw new MatrixError('M_BAD_JSON', 'Not a join event');
    }
    if (serverNameOf(pdu.sender) !== origin) throw forbidden(`${origin} may not send joins for ${pdu.sender}`);
    const eventId = eventIdOf(pdu, version);
    if (eventId !== eventIdParam) throw new MatrixError('M_BAD_JSON', 'Event id does not match the event');
    if (!checkContentHash(pdu)) throw new MatrixError('M_BAD_JSON', 'Content hash does not match the event');
    // Restricted joins (v8+) authorised by one of our users carry our signature too.
    let signedByUs = false;
    const via = pdu.content.join_authorised_via_users_server;
    if (version.restrictedJoinRule && typeof via === 'string' && serverNameOf(via) === serverName) {
      pdu = rooms.signAsServer(pdu, version);
      signedByUs = true;
    }
    const sig = await checkSignatures(pdu, version, (s, k, t) => keyStore.verifyKeyFor(s, k, t));
    if (sig) throw forbidden(`Invalid join event: ${sig}`);
    const [outcome] = await pipeline.withRoomLock(roomId, () => rooms.acceptRemoteEvents(roomId, [{ pdu, eventId }]));
    if (outcome && (outcome.outcome === 'rejected' || outcome.outcome === 'soft_failed')) {
      logger.info({ origin, roomId, eventId, outcome: outcome.outcome, reason: outcome.reason }, 'send_join refused');
      throw forbidden(`Join refused: ${outcome.reason ?? outcome.outcome}`);
    }
    const { state, authChain } = await rooms.stateAndAuthChain(roomId, eventId);
    return {
      origin: serverName,
      state: state.map(federationPdu),
      auth_chain: authChain.map(federationPdu),
      members_omitted: false,
      servers_in_room: await serversInRoom(db, roomId, serverName),
      ...(signedByUs ? { event: pdu } : {}),
    };
  };

  return [
    // Spec: GET /_matrix/federation/v1/make_join/{roomId}/{userId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/make_join/:roomId/:userId',
      auth: 'server',
      query: verQuery,
      handler: async ({ params, query, server }) => {
        const userId = params.userId!;
        if (!userId.startsWith('@') || serverNameOf(userId) !== server.origin) {
          throw forbidden(`${server.origin} may not make joins for ${userId}`);
        }
        const version = await versionOf(params.roomId!);
        // A room all our users left is not one we can vouch for (as Synapse: "Not an active room on this server").
        if (!(await roomMembers(db.knex, params.roomId!, ['join'])).some((u) => serverNameOf(u) === serverName)) throw notFound('Not an active room on this server');
        await acl?.assertAllowed(params.roomId!, server.origin);
        const supported = query.ver === undefined ? ['1'] : Array.isArray(query.ver) ? query.ver : [query.ver];
        if (!supported.includes(version.id)) {
          throw new MatrixError('M_INCOMPATIBLE_ROOM_VERSION', `Your homeserver does not support room version ${version.id}`, 400, {
            room_version: version.id,
          });
        }
        return rooms.joinTemplate(params.roomId!, userId, 'join');
      },
    }),
    // Spec: PUT /_matrix/federation/v1/send_join/{roomId}/{eventId} (deprecated; answers `[200, body]`)
    defineRoute({
      method: 'PUT',
      prefixes: FEDERATION_V1,
      path: '/send_join/:roomId/:eventId',
      auth: 'server',
      handler: async ({ params, body, server }) => [200, await sendJoin(params.roomId!, params.eventId!, body, server.origin)],
    }),
    // Spec: PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}
    defineRoute({
      method: 'PUT',
      prefixes: FEDERATION_V2,
      path: '/send_join/:roomId/:eventId',
      auth: 'server',
      handler: ({ params, body, server }) => sendJoin(params.roomId!, params.eventId!, body, server.origin),
    }),
  ];
}
