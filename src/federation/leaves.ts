/**
 * Leaving rooms through another server (spec: Server-Server API, "Leaving Rooms (Rejecting Invites)").
 *
 * Resident side: GET /v1/make_leave/{roomId}/{userId} hands out a leave template, PUT /v2/send_leave accepts
 * the signed leave through the one append path.
 *
 * Leaving side (RemoteLeaver): a local user rejects an invite (or takes back a knock) for a room this server
 * does not have: make_leave / send_leave through the inviting server (or the room's), then the leave is
 * stored as the user's out-of-band membership. When no server can be reached the rejection is still
 * recorded locally (an unsent leave on top of the invite), so nobody is stuck with an invite.
 *
 * The helpers shared with knocks (checking a membership event another server sent, filling in a template
 * from a resident server) live here too.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { SigningKey } from '../crypto/signing.js';
import { MatrixError, forbidden, notFound } from '../errors.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import { checkContentHash, computeEventId, eventIdOf, hashAndSignPdu } from '../rooms/eventFormat.js';
import type { Actor, RoomService } from '../rooms/roomService.js';
import { ROOM_VERSIONS, getRoomVersion, type RoomVersion } from '../rooms/roomVersions.js';
import type { Database } from '../storage/database.js';
import { getProfile } from '../storage/repositories/profiles.js';
import { currentMembership } from '../storage/repositories/state.js';
import type { Pdu } from '../types/pdu.js';
import type { ServerAclChecker } from './acl.js';
import { FederationRequestError, isUnknownEndpoint, type FederationClient } from './client.js';
import type { KeyStore } from './keyStore.js';
import { checkFormat, checkSignatures, type InboundPipeline } from './pipeline.js';
import type { ResidentRooms } from './membershipApi.js';
import { isValidServerName, serverNameOf } from './serverName.js';

export const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;
export const FEDERATION_V2 = ['/_matrix/federation/v2'] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Local bookkeeping in an out-of-band membership's `unsigned`: the server it was made through. */
export const VIA_KEY = 'org.skjol.via';

/**
 * Checks a membership event another server sent us (send_join / send_leave / send_knock): format, the room,
 * a membership of its own sender, made by a user of the requesting server, the event id and content hash.
 * Signatures are checked separately (async).
 */
export function checkSentMembership(
  raw: unknown,
  version: RoomVersion,
  expect: { roomId: string; eventId: string; origin: string; membership: 'join' | 'leave' | 'knock' },
): Pdu {
  const format = checkFormat(raw, version);
  if (format) throw formatRefusal(format);
  const { unsigned: _u, ...rest } = raw as Pdu;
  const pdu = rest as Pdu;
  if (pdu.room_id !== expect.roomId) throw new MatrixError('M_BAD_JSON', 'Event is for another room');
  if (pdu.type !== 'm.room.member' || pdu.state_key !== pdu.sender || pdu.content.membership !== expect.membership) {
    throw new MatrixError('M_BAD_JSON', `Not a ${expect.membership} event`);
  }
  if (serverNameOf(pdu.sender) !== expect.origin) throw forbidden(`${expect.origin} may not send events for ${pdu.sender}`);
  if (eventIdOf(pdu, version) !== expect.eventId) throw new MatrixError('M_BAD_JSON', 'Event id does not match the event');
  if (!checkContentHash(pdu)) throw new MatrixError('M_BAD_JSON', 'Content hash does not match the event');
  return pdu;
}

/**
 * The error for a sent event of bad format: 403 when it lacks the signatures or hashes a signed event has
 * (as Synapse, whose signature check fails first), 400 M_BAD_JSON otherwise (floats, big integers …).
 */
export function formatRefusal(reason: string): MatrixError {
  if (/^(signatures|hashes)\b/.test(reason)) return forbidden(`Event is not signed: ${reason}`);
  return new MatrixError('M_BAD_JSON', `Invalid event: ${reason}`);
}

/** The room versions a make_* request says the asking server supports (`ver`, v1 when absent). */
export function assertVersionSupported(ver: string | string[] | undefined, version: RoomVersion): void {
  const supported = ver === undefined ? ['1'] : Array.isArray(ver) ? ver : [ver];
  if (!supported.includes(version.id)) {
    throw new MatrixError('M_INCOMPATIBLE_ROOM_VERSION', `Your homeserver does not support room version ${version.id}`, 400, { room_version: version.id });
  }
}

/** The room version of a make_* answer; an answer without `room_version` is version 1 (spec: make_join). */
export function templateVersion(template: { room_version?: unknown }): RoomVersion {
  const version = template.room_version === undefined ? getRoomVersion('1') : typeof template.room_version === 'string' ? getRoomVersion(template.room_version) : undefined;
  if (!version) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', 'The room uses a room version this server does not support', 400);
  return version;
}

/**
 * Fills in a make_* template of a resident server: our content, origin and timestamp, then hashes and
 * signs it. The template must be the expected membership of `userId` in `roomId`.
 */
export async function signTemplate(
  deps: { db: Database; serverName: string; signingKey: SigningKey; clock: { now(): number } },
  destination: string,
  template: { room_version?: unknown; event?: unknown },
  expect: { roomId: string; userId: string; membership: 'leave' | 'knock' },
  extra: Record<string, unknown>,
): Promise<{ pdu: Pdu; eventId: string; version: RoomVersion }> {
  const version = templateVersion(template);
  if (expect.membership === 'knock' && !version.knockJoinRule) throw new MatrixError('M_FORBIDDEN', `Room version ${version.id} does not support knocking`, 403);
  const skeleton = template.event;
  if (
    !isObject(skeleton) ||
    skeleton.type !== 'm.room.member' ||
    skeleton.state_key !== expect.userId ||
    skeleton.sender !== expect.userId ||
    skeleton.room_id !== expect.roomId ||
    !isObject(skeleton.content)
  ) {
    throw new FederationRequestError(destination, 'bad_response', `make_${expect.membership} template is not a ${expect.membership} of this user`);
  }
  const content: Record<string, unknown> = { ...extra };
  if (expect.membership === 'knock') {
    const profile = await getProfile(deps.db.knex, expect.userId);
    if (profile?.displayname && content.displayname === undefined) content.displayname = profile.displayname;
    if (profile?.avatar_url && content.avatar_url === undefined) content.avatar_url = profile.avatar_url;
  }
  content.membership = expect.membership;
  const { hashes: _h, signatures: _s, unsigned: _u, event_id: _e, ...fields } = skeleton;
  const draft = { ...fields, content, origin: deps.serverName, origin_server_ts: deps.clock.now(), signatures: {} } as unknown as Pdu;
  if (version.eventFormat === 'v1') draft.event_id = computeEventId(draft, version, deps.serverName);
  const pdu = hashAndSignPdu(draft, deps.serverName, deps.signingKey, version);
  return { pdu, eventId: eventIdOf(pdu, version), version };
}

/** Servers to try for a room we only know through an out-of-band membership event. */
export function serversFor(pdu: Pdu, roomId: string, own: string, extra: readonly string[] = []): string[] {
  const via = pdu.unsigned?.[VIA_KEY];
  const list = [...extra, ...(typeof via === 'string' ? [via] : []), serverNameOf(pdu.sender) ?? '', serverNameOf(roomId) ?? ''];
  return [...new Set(list)].filter((s) => s !== own && isValidServerName(s));
}

export interface LeaverDeps {
  db: Database;
  rooms: Pick<RoomService, 'events' | 'storeOutOfBandMembership'>;
  client: Pick<FederationClient, 'request'>;
  serverName: string;
  signingKey: SigningKey;
  clock: { now(): number };
  logger: Logger;
}

export class RemoteLeaver {
  constructor(private readonly deps: LeaverDeps) {}

  /** RoomService.setRemoteLeaver: rejects the invite / rescinds the knock of `actor` in `roomId`. */
  readonly leave = async (actor: Actor, roomId: string, reason: string | undefined): Promise<void> => {
    const { db, rooms, client, logger, serverName } = this.deps;
    const m = await currentMembership(db.knex, roomId, actor.userId);
    const current = m ? await rooms.events.get(db.knex, m.eventId) : undefined;
    if (!m || !current || (m.membership !== 'invite' && m.membership !== 'knock')) throw notFound('Unknown room');
    const extra: Record<string, unknown> = reason !== undefined ? { reason } : {};
    for (const destination of serversFor(current.pdu, roomId, serverName)) {
      try {
        const template = await client.request<{ room_version?: unknown; event?: unknown }>({
          destination,
          method: 'GET',
          path: `/_matrix/federation/v1/make_leave/${encodeURIComponent(roomId)}/${encodeURIComponent(actor.userId)}`,
        });
        const { pdu, eventId } = await signTemplate(this.deps, destination, template, { roomId, userId: actor.userId, membership: 'leave' }, extra);
        const path = (v: string) => `/_matrix/federation/${v}/send_leave/${encodeURIComponent(roomId)}/${encodeURIComponent(eventId)}`;
        try {
          await client.request({ destination, method: 'PUT', path: path('v2'), body: pdu });
        } catch (err) {
          // Servers without v2 get the deprecated v1 form (as Synapse).
          if (!isUnknownEndpoint(err)) throw err;
          await client.request({ destination, method: 'PUT', path: path('v1'), body: pdu });
        }
        await rooms.storeOutOfBandMembership(pdu, eventId);
        logger.info({ roomId, destination, was: m.membership }, 'left a room on another server');
        return;
      } catch (err) {
        logger.info({ roomId, destination, err: err instanceof Error ? err.message : String(err) }, 'remote leave attempt failed');
      }
    }
    // Nobody could be told: reject locally, so the invite does not stay forever (the inviting server keeps
    // its copy of the invite until it hears otherwise).
    await this.leaveLocally(current.pdu, m.eventId, actor.userId, extra);
  };

  private async leaveLocally(membershipPdu: Pdu, membershipEventId: string, userId: string, extra: Record<string, unknown>): Promise<void> {
    const { serverName, signingKey, clock, logger } = this.deps;
    let version = ROOM_VERSIONS.get('10')!;
    const declared = membershipPdu.unsigned?.invite_room_state;
    if (Array.isArray(declared)) {
      const create = declared.find((e) => isObject(e) && e.type === 'm.room.create') as { content?: { room_version?: unknown } } | undefined;
      const v = typeof create?.content?.room_version === 'string' ? getRoomVersion(create.content.room_version) : undefined;
      if (v) version = v;
      else if (create) version = ROOM_VERSIONS.get('1')!;
    }
    const draft = {
      room_id: membershipPdu.room_id,
      sender: userId,
      type: 'm.room.member',
      state_key: userId,
      content: { ...extra, membership: 'leave' },
      prev_events: version.eventFormat === 'v1' ? [[membershipEventId, membershipPdu.hashes]] : [membershipEventId],
      auth_events: version.eventFormat === 'v1' ? [[membershipEventId, membershipPdu.hashes]] : [membershipEventId],
      depth: membershipPdu.depth + 1,
      origin: serverName,
      origin_server_ts: clock.now(),
      hashes: { sha256: '' },
      signatures: {},
    } as unknown as Pdu;
    if (version.eventFormat === 'v1') draft.event_id = computeEventId(draft, version, serverName);
    const pdu = hashAndSignPdu(draft, serverName, signingKey, version);
    await this.deps.rooms.storeOutOfBandMembership(pdu, eventIdOf(pdu, version));
    logger.warn({ roomId: membershipPdu.room_id }, 'no server reachable: invite rejected locally only');
  }
}

export interface LeaveApiDeps {
  db: Database;
  rooms: ResidentRooms;
  keyStore: Pick<KeyStore, 'verifyKeyFor'>;
  pipeline: Pick<InboundPipeline, 'withRoomLock'>;
  acl: Pick<ServerAclChecker, 'assertAllowed'>;
  logger: Logger;
}

/** The room's version, or 404 for rooms this server does not have. */
export async function residentVersion(rooms: Pick<ResidentRooms, 'roomVersion'>, db: Database, roomId: string): Promise<RoomVersion> {
  try {
    return await rooms.roomVersion(db.knex, roomId);
  } catch {
    throw notFound('Unknown room');
  }
}

export function leaveApiRoutes(deps: LeaveApiDeps): RouteDefinition[] {
  const { db, rooms, keyStore, pipeline, acl, logger } = deps;
  /** send_leave (v1 and v2): checks the signed leave and accepts it. */
  const sendLeave = async (roomId: string, eventId: string, body: unknown, origin: string) => {
    const version = await residentVersion(rooms, db, roomId);
    await acl.assertAllowed(roomId, origin);
    const pdu = checkSentMembership(body, version, { roomId, eventId, origin, membership: 'leave' });
    const sig = await checkSignatures(pdu, version, (s, k, t) => keyStore.verifyKeyFor(s, k, t));
    if (sig) throw forbidden(`Invalid leave event: ${sig}`);
    const [outcome] = await pipeline.withRoomLock(roomId, () => rooms.acceptRemoteEvents(roomId, [{ pdu, eventId }]));
    if (outcome && (outcome.outcome === 'rejected' || outcome.outcome === 'soft_failed')) {
      logger.info({ origin, roomId, outcome: outcome.outcome, reason: outcome.reason }, 'send_leave refused');
      throw forbidden(`Leave refused: ${outcome.reason ?? outcome.outcome}`);
    }
    return {};
  };
  return [
    // Spec: GET /_matrix/federation/v1/make_leave/{roomId}/{userId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/make_leave/:roomId/:userId',
      auth: 'server',
      query: z.looseObject({}),
      handler: async ({ params, server }) => {
        const userId = params.userId!;
        if (!userId.startsWith('@') || serverNameOf(userId) !== server.origin) throw forbidden(`${server.origin} may not make leaves for ${userId}`);
        await residentVersion(rooms, db, params.roomId!);
        await acl.assertAllowed(params.roomId!, server.origin);
        return rooms.joinTemplate(params.roomId!, userId, 'leave');
      },
    }),
    // Spec: PUT /_matrix/federation/v1/send_leave/{roomId}/{eventId} (deprecated; answers `[200, {}]`)
    defineRoute({
      method: 'PUT',
      prefixes: FEDERATION_V1,
      path: '/send_leave/:roomId/:eventId',
      auth: 'server',
      handler: async ({ params, body, server }) => [200, await sendLeave(params.roomId!, params.eventId!, body, server.origin)],
    }),
    // Spec: PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}
    defineRoute({
      method: 'PUT',
      prefixes: FEDERATION_V2,
      path: '/send_leave/:roomId/:eventId',
      auth: 'server',
      handler: ({ params, body, server }) => sendLeave(params.roomId!, params.eventId!, body, server.origin),
    }),
  ];
}
