/**
 * Invites across servers (spec: Server-Server API, "Inviting to a room"; PUT /_matrix/federation/v2/invite).
 *
 * Inviting side (RemoteInviter): the invite event is built on the room's current head and signed here, the
 * invitee's server countersigns it, and the doubly signed event goes through the one append path
 * (acceptRemoteEvents), from where the outbox sends it to the other servers in the room.
 *
 * Invitee side (inviteApiRoutes): the event is checked (format, ids, the sender's server signature, content
 * hash, the invitee is a user of ours), signed by us and answered. For a room this server does not have, it is
 * stored as an out-of-band membership carrying `invite_room_state`, so the invitee's /sync shows it; the
 * invitee then joins through RemoteJoiner or rejects through RemoteLeaver (make_leave/send_leave).
 */
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { SigningKey } from '../crypto/signing.js';
import { MatrixError, forbidden } from '../errors.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import { authTypesForEvent, checkAuth, withImpliedCreate } from '../rooms/authRules.js';
import { toStrippedState } from '../rooms/clientEvent.js';
import { buildPdu, checkContentHash, eventIdOf, isThirdPartyInvite, verifyPduSignature } from '../rooms/eventFormat.js';
import type { Actor, RoomService } from '../rooms/roomService.js';
import { getRoomVersion, type RoomVersion } from '../rooms/roomVersions.js';
import type { RoomWriteContext } from '../rooms/roomWriter.js';
import type { Database } from '../storage/database.js';
import { getRoom } from '../storage/repositories/rooms.js';
import { roomMembers } from '../storage/repositories/state.js';
import { userExists } from '../storage/repositories/users.js';
import { stateMapKey, type Pdu, type ReadonlyStateMap } from '../types/pdu.js';
import type { ServerAclChecker } from './acl.js';
import { FederationRequestError, finalRemoteRefusal, isUnknownEndpoint, unwrapV1Answer, type FederationClient } from './client.js';
import type { KeyStore } from './keyStore.js';
import { federationPdu } from './outbox.js';
import { formatRefusal } from './leaves.js';
import { checkFormat, checkSignatures, type InboundPipeline } from './pipeline.js';
import { serverNameOf } from './serverName.js';

export const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;
export const FEDERATION_V2 = ['/_matrix/federation/v2'] as const;

const NO_FAILOVER: ReadonlySet<string> = new Set();

/** State shown to someone invited or knocking (spec: "Stripped state"). */
export const STRIPPED_STATE_TYPES = [
  'm.room.create',
  'm.room.join_rules',
  'm.room.name',
  'm.room.avatar',
  'm.room.canonical_alias',
  'm.room.encryption',
  'm.room.topic',
  // Lets the invitee's server decide whether its guests may accept (Synapse leaves it out, and refuses them).
  'm.room.guest_access',
];

export type StrippedState = ReturnType<typeof toStrippedState>;

/** Stripped state of a room (plus the member event of `sender`, who invites or is asked). */
export function strippedRoomState(state: ReadonlyStateMap, sender?: string): StrippedState[] {
  const keys = STRIPPED_STATE_TYPES.map((t) => stateMapKey(t, ''));
  if (sender) keys.push(stateMapKey('m.room.member', sender));
  return keys.map((k) => state.get(k)).filter((p): p is Pdu => p !== undefined).map(toStrippedState);
}

/** Whether `server` signed `pdu` with a key valid for it (any of its ed25519 keys). */
export async function signedBy(pdu: Pdu, server: string, version: RoomVersion, keyStore: Pick<KeyStore, 'verifyKeyFor'>): Promise<boolean> {
  const sigs = pdu.signatures?.[server];
  if (!sigs || typeof sigs !== 'object') return false;
  const at = version.enforceKeyValidity ? pdu.origin_server_ts : 0;
  for (const keyId of Object.keys(sigs)) {
    if (!keyId.startsWith('ed25519:')) continue;
    const key = await keyStore.verifyKeyFor(server, keyId, at);
    if (key !== undefined && verifyPduSignature(pdu, server, keyId, key, version)) return true;
  }
  return false;
}

/**
 * Builds a complete, signed local event on the room's current head without appending it (an invite that
 * another server must countersign first). Checked against the auth rules on current state.
 */
export async function buildOnHead(
  ctx: RoomWriteContext,
  trx: Knex.Transaction,
  rooms: Pick<RoomService, 'events'>,
  draft: { type: string; stateKey?: string; sender: string; content: Record<string, unknown> },
  signer: { serverName: string; signingKey: SigningKey; now: number },
): Promise<{ pdu: Pdu; eventId: string }> {
  const { version } = ctx;
  const authIds: string[] = [];
  const authState = new Map<string, Pdu>();
  for (const [type, stateKey] of authTypesForEvent(draft.type, draft.stateKey, draft.content, draft.sender, version)) {
    const ev = ctx.state.get(stateMapKey(type, stateKey));
    if (ev) {
      authIds.push(ctx.idOf(ev));
      authState.set(stateMapKey(type, stateKey), ev);
    }
  }
  const prev = ctx.forwardExtremities.slice(0, 10);
  const depth = prev.reduce((m, e) => Math.max(m, e.depth), 0) + 1;
  const refs = version.eventFormat === 'v1' ? await rooms.events.getMany(trx, [...prev.map((p) => p.eventId), ...authIds]) : new Map();
  const { pdu, eventId } = buildPdu(
    {
      room_id: ctx.roomId,
      sender: draft.sender,
      type: draft.type,
      ...(draft.stateKey !== undefined ? { state_key: draft.stateKey } : {}),
      content: draft.content,
      prev_events: prev.map((e) => e.eventId),
      auth_events: authIds,
      depth,
      origin_server_ts: signer.now,
    },
    version,
    { serverName: signer.serverName, key: signer.signingKey, includeOrigin: true, hashLookup: (id) => refs.get(id)?.pdu.hashes },
  );
  // v12: the create event is implied by the room id and still takes part in the check.
  const verdict = checkAuth(pdu, withImpliedCreate(authState, ctx.state.get(stateMapKey('m.room.create', '')), version), version);
  if (!verdict.allowed) throw forbidden(verdict.reason);
  return { pdu, eventId };
}

export interface InviterDeps {
  db: Database;
  rooms: RoomService;
  client: Pick<FederationClient, 'request'>;
  keyStore: Pick<KeyStore, 'verifyKeyFor'>;
  pipeline: Pick<InboundPipeline, 'withRoomLock'>;
  serverName: string;
  signingKey: SigningKey;
  clock: { now(): number };
  logger: Logger;
}

export class RemoteInviter {
  constructor(private readonly deps: InviterDeps) {}

  /** RoomService.setRemoteInviter: invites `target` (a user of another server) to a room of ours. */
  readonly invite = async (actor: Actor, roomId: string, target: string, content: Record<string, unknown>): Promise<void> => {
    const { rooms, serverName, signingKey, clock, logger } = this.deps;
    const destination = serverNameOf(target);
    if (!destination) throw new MatrixError('M_INVALID_PARAM', 'Invalid user id');
    const built = await rooms.write(roomId, async (ctx, trx) => {
      const current = ctx.membershipOf(target);
      if (current === 'join') throw forbidden(`${target} is already in the room`);
      if (current === 'ban') throw forbidden(`${target} is banned from the room`);
      const ev = await buildOnHead(ctx, trx, rooms, { type: 'm.room.member', stateKey: target, sender: actor.userId, content }, { serverName, signingKey, now: clock.now() });
      return { ...ev, version: ctx.version, stripped: strippedRoomState(ctx.state, actor.userId) };
    });
    const { version, eventId } = built;

    let res: { event?: unknown } | undefined;
    try {
      res = await this.sendInvite(destination, roomId, eventId, version, built.pdu, built.stripped);
    } catch (err) {
      if (err instanceof MatrixError && !(err instanceof FederationRequestError)) throw err;
      logger.info({ destination, roomId, err: err instanceof Error ? err.message : String(err) }, 'remote invite refused');
      // The invitee's server's 4xx (unknown user, incompatible room version …) goes to the client as it came.
      const refusal = finalRemoteRefusal(err, NO_FAILOVER);
      if (refusal) throw refusal;
      throw new MatrixError('M_UNKNOWN', `Could not reach ${destination} to invite ${target}`, 502);
    }
    const signed = await this.checkCountersigned(res?.event, version, eventId, destination);
    const [outcome] = await this.deps.pipeline.withRoomLock(roomId, () => rooms.acceptRemoteEvents(roomId, [{ pdu: signed, eventId }]));
    if (outcome && outcome.outcome !== 'accepted' && outcome.outcome !== 'duplicate') {
      throw forbidden(`Invite refused: ${outcome.reason ?? outcome.outcome}`);
    }
  };

  /** PUT /v2/invite, or the deprecated /v1/invite for servers that do not know v2 (room versions 1 and 2 only, as Synapse). */
  private async sendInvite(destination: string, roomId: string, eventId: string, version: RoomVersion, pdu: Pdu, stripped: StrippedState[]): Promise<{ event?: unknown } | undefined> {
    const path = (v: string) => `/_matrix/federation/${v}/invite/${encodeURIComponent(roomId)}/${encodeURIComponent(eventId)}`;
    try {
      return await this.deps.client.request<{ event?: unknown }>({
        destination,
        method: 'PUT',
        path: path('v2'),
        body: { room_version: version.id, event: federationPdu(pdu), invite_room_state: stripped },
      });
    } catch (err) {
      if (!isUnknownEndpoint(err)) throw err;
      if (version.eventFormat !== 'v1') throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', `${destination} does not support room version ${version.id}`, 400);
    }
    const res = await this.deps.client.request<unknown>({
      destination,
      method: 'PUT',
      path: path('v1'),
      body: { ...federationPdu(pdu), unsigned: { invite_room_state: stripped } },
    });
    return unwrapV1Answer(res) as { event?: unknown } | undefined;
  }

  /** The invitee's copy must be our event (same id, intact content), signed by us and by them. */
  private async checkCountersigned(raw: unknown, version: RoomVersion, eventId: string, destination: string): Promise<Pdu> {
    const bad = (why: string) => new MatrixError('M_UNKNOWN', `${destination} answered the invite with ${why}`, 502);
    const format = checkFormat(raw, version);
    // As Synapse, which parses the answer as an event of the room's version first.
    if (format) throw new MatrixError('M_BAD_JSON', `${destination} answered the invite with a malformed event: ${format}`, 400);
    const { unsigned: _u, ...rest } = raw as Pdu;
    const pdu = rest as Pdu;
    if (eventIdOf(pdu, version) !== eventId) throw bad('another event');
    if (!checkContentHash(pdu)) throw bad('altered content');
    if (!(await signedBy(pdu, destination, version, this.deps.keyStore))) throw bad('no valid signature of its own');
    if (await checkSignatures(pdu, version, (s, k, t) => this.deps.keyStore.verifyKeyFor(s, k, t))) throw bad('broken signatures');
    return pdu;
  }
}

export interface InviteApiDeps {
  db: Database;
  rooms: Pick<RoomService, 'signAsServer' | 'storeOutOfBandMembership'>;
  keyStore: Pick<KeyStore, 'verifyKeyFor'>;
  acl: Pick<ServerAclChecker, 'assertAllowed'>;
  serverName: string;
  logger: Logger;
}

const strippedEvent = z.looseObject({ type: z.string(), state_key: z.string(), sender: z.string(), content: z.record(z.string(), z.unknown()) });

const inviteBody = z.looseObject({
  room_version: z.string(),
  event: z.record(z.string(), z.unknown()),
  invite_room_state: z.array(z.unknown()).optional(),
});

export function inviteApiRoutes(deps: InviteApiDeps): RouteDefinition[] {
  const { db, rooms, keyStore, acl, serverName, logger } = deps;
  /** An invite (v1 and v2): checked, countersigned, and stored when the room is not known here. */
  const receiveInvite = async (
    roomId: string,
    eventIdParam: string,
    origin: string,
    roomVersion: string,
    event: Record<string, unknown>,
    inviteRoomStateIn: unknown[] | undefined,
  ) => {
    const version = getRoomVersion(roomVersion);
    if (!version) {
      throw new MatrixError('M_INCOMPATIBLE_ROOM_VERSION', `This server does not support room version ${roomVersion}`, 400, { room_version: roomVersion });
    }
    // A denied server hears so before anything about the event (spec: "Server Access Control Lists").
    await acl.assertAllowed(roomId, origin);
    const format = checkFormat(event, version);
    if (format) throw formatRefusal(format);
    const { unsigned: _u, ...rest } = event as unknown as Pdu;
    const pdu = rest as Pdu;
    if (pdu.room_id !== roomId) throw new MatrixError('M_BAD_JSON', 'Event is for another room');
    if (pdu.type !== 'm.room.member' || pdu.content.membership !== 'invite' || typeof pdu.state_key !== 'string') {
      throw new MatrixError('M_BAD_JSON', 'Not an invite event');
    }
    if (eventIdOf(pdu, version) !== eventIdParam) throw new MatrixError('M_BAD_JSON', 'Event id does not match the event');
    if (serverNameOf(pdu.sender) !== origin) throw forbidden(`${origin} may not send invites for ${pdu.sender}`);
    const invitee = pdu.state_key;
    const known = await getRoom(db.knex, roomId);
    // For a room we are in, the invite comes back through /send under the auth rules (Synapse does not look the user up).
    if (serverNameOf(invitee) !== serverName || (!known && !(await userExists(db.knex, invitee)))) throw forbidden(`${invitee} is not a user of this server`);
    if (!checkContentHash(pdu)) throw new MatrixError('M_BAD_JSON', 'Content hash does not match the event');
    // A third-party invite's required signature is ours (the invitee's server), added below: the origin's is checked here.
    const sig = isThirdPartyInvite(pdu)
      ? (await signedBy(pdu, origin, version, keyStore)) ? null : `no valid signature of ${origin}`
      : await checkSignatures(pdu, version, (s, k, t) => keyStore.verifyKeyFor(s, k, t));
    if (sig) throw forbidden(`Invalid invite event: ${sig}`);

    const signed = rooms.signAsServer(pdu, version);
    const localJoined = known ? (await roomMembers(db.knex, roomId, ['join'])).some((u) => serverNameOf(u) === serverName) : false;
    // No local user in the room (never known, or left): the invite will not reach us through /send.
    if (!localJoined) {
      const inviteRoomState = (inviteRoomStateIn ?? []).filter((e) => strippedEvent.safeParse(e).success);
      await rooms.storeOutOfBandMembership({ ...signed, unsigned: { invite_room_state: inviteRoomState } }, eventIdParam);
      logger.info({ origin, roomId, invitee, known: Boolean(known) }, 'invite to a room on another server stored');
    }
    return { event: signed };
  };

  return [
    // Spec: PUT /_matrix/federation/v1/invite/{roomId}/{eventId} (deprecated: rooms v1/v2 only, answers `[200, body]`)
    defineRoute({
      method: 'PUT',
      prefixes: FEDERATION_V1,
      path: '/invite/:roomId/:eventId',
      auth: 'server',
      body: z.record(z.string(), z.unknown()),
      handler: async ({ params, body, server }) => {
        // No room version is sent: v1 and v2 differ only in state resolution, which an invite does not use (as Synapse).
        const unsigned = body.unsigned as { invite_room_state?: unknown } | undefined;
        const stripped = Array.isArray(unsigned?.invite_room_state) ? unsigned.invite_room_state : undefined;
        return [200, await receiveInvite(params.roomId!, params.eventId!, server.origin, '1', body, stripped)];
      },
    }),
    // Spec: PUT /_matrix/federation/v2/invite/{roomId}/{eventId}
    defineRoute({
      method: 'PUT',
      prefixes: FEDERATION_V2,
      path: '/invite/:roomId/:eventId',
      auth: 'server',
      body: inviteBody,
      handler: ({ params, body, server }) => receiveInvite(params.roomId!, params.eventId!, server.origin, body.room_version, body.event, body.invite_room_state),
    }),
  ];
}
