/**
 * Third-party invites (spec: Client-Server API, "Third-party invites"; Server-Server API, "Third-party
 * invites"). Inviting: the identity server is asked whom the 3PID belongs to; a bound one gets a normal
 * invite, an unbound one is stored at the identity server and announced with an m.room.third_party_invite
 * state event. Redeeming (the identity server's /3pid/onbind, a /join with third_party_signed, or another
 * server's exchange_third_party_invite): the signed block is checked against the invite's public keys and
 * their validity at the identity server, then the member invite is made on the original inviter's behalf,
 * here when a local user is in the room, else by the inviter's or the room's server.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { MatrixError, forbidden, notFound } from '../errors.js';
import type { FederationClient } from '../federation/client.js';
import { FederationRequestError } from '../federation/client.js';
import { serverNameOf } from '../rooms/eventFormat.js';
import type { Actor, RoomService } from '../rooms/roomService.js';
import type { Database } from '../storage/database.js';
import { getRoom } from '../storage/repositories/rooms.js';
import { currentMembership, getCurrentStateEventId } from '../storage/repositories/state.js';
import type { Pdu } from '../types/pdu.js';
import type { IdentityClient } from './identityClient.js';
import { idServerName } from './identityClient.js';
import { keyThatSigned } from './inviteSignature.js';

const userId = z.string().max(255).regex(/^@[^:]+:.+$/, 'must be a user id');
const roomId = z.string().max(255).regex(/^![^\s]+$/, 'must be a room id');

/** The identity server's signed block (spec: "Signed third-party invite"); `sender` as a /join carries it. */
export const signedBlock = z.looseObject({
  mxid: userId,
  token: z.string().min(1).max(255),
  signatures: z.record(z.string().max(255), z.record(z.string().max(255), z.string().max(512))),
});

/** Spec: POST /rooms/{roomId}/invite by third-party identifier, and createRoom's invite_3pid entries. */
export const threepidInvite = z.looseObject({
  id_server: idServerName,
  id_access_token: z.string().min(1).max(1024),
  medium: z.string().min(1).max(64),
  address: z.string().min(1).max(512),
});
export type ThreepidInvite = z.output<typeof threepidInvite>;

/** Spec: PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId} body. */
export const exchangeBody = z.looseObject({
  type: z.literal('m.room.member'),
  room_id: roomId,
  sender: userId,
  state_key: userId,
  content: z.looseObject({
    membership: z.literal('invite'),
    third_party_invite: z.looseObject({ display_name: z.string().max(1024).optional(), signed: signedBlock }),
  }),
});

/** Spec: PUT /_matrix/federation/v1/3pid/onbind body (the identity server's notification). */
export const onBindBody = z.looseObject({
  medium: z.string().max(64),
  address: z.string().max(512),
  mxid: userId,
  invites: z
    .array(z.looseObject({ room_id: roomId, sender: userId, mxid: userId, signed: signedBlock }))
    .max(50)
    .optional(),
});

export interface ThirdPartyInviteDeps {
  db: Database;
  rooms: RoomService;
  identity: IdentityClient;
  federation: Pick<FederationClient, 'request'>;
  serverName: string;
  logger: Logger;
}

export class ThirdPartyInvites {
  constructor(private readonly deps: ThirdPartyInviteDeps) {}

  /** Invites whoever owns the 3PID (Synapse's do_3pid_invite). */
  async invite(actor: Actor, roomId: string, req: ThreepidInvite): Promise<void> {
    const { rooms, identity, logger, db } = this.deps;
    const membership = await currentMembership(db.knex, roomId, actor.userId);
    if (membership?.membership !== 'join') throw forbidden(`User ${actor.userId} is not in room ${roomId}`);
    let mxid: string | undefined;
    try {
      mxid = await identity.lookup(req.id_server, req.id_access_token, req.medium, req.address);
    } catch (err) {
      // As Synapse: a failed lookup is treated as unbound; storing the invite reports the identity server's state.
      logger.info({ idServer: req.id_server, reason: (err as Error).message }, '3PID lookup failed');
    }
    if (mxid) return rooms.invite(actor, roomId, mxid);

    const state = async (type: string, stateKey = '') => {
      const id = await getCurrentStateEventId(db.knex, roomId, type, stateKey);
      return id ? (await rooms.events.get(db.knex, id))?.pdu.content : undefined;
    };
    const str = (v: unknown) => (typeof v === 'string' ? v : '');
    const inviter = await state('m.room.member', actor.userId);
    const create = await state('m.room.create');
    const stored = await identity.storeInvite(req.id_server, req.id_access_token, {
      medium: req.medium,
      address: req.address,
      room_id: roomId,
      room_alias: str((await state('m.room.canonical_alias'))?.alias),
      room_avatar_url: str((await state('m.room.avatar'))?.url),
      room_join_rules: str((await state('m.room.join_rules'))?.join_rule),
      room_name: str((await state('m.room.name'))?.name),
      ...(typeof create?.type === 'string' ? { room_type: create.type } : {}),
      sender: actor.userId,
      sender_display_name: str(inviter?.displayname) || actor.userId,
      sender_avatar_url: str(inviter?.avatar_url),
    });
    await rooms.sendEvent(actor, roomId, {
      type: 'm.room.third_party_invite',
      stateKey: stored.token,
      content: {
        display_name: stored.displayName,
        public_keys: stored.publicKeys,
        // For older servers and clients (as Synapse).
        key_validity_url: stored.fallback.key_validity_url,
        public_key: stored.fallback.public_key,
      },
    });
  }

  /** The identity server's notification that a 3PID was bound: each pending invite becomes a member invite. */
  async onBind(body: z.output<typeof onBindBody>): Promise<void> {
    let last: unknown;
    for (const invite of body.invites ?? []) {
      try {
        await this.exchange(invite.sender, invite.mxid, invite.room_id, invite.signed);
      } catch (err) {
        this.deps.logger.info({ roomId: invite.room_id, reason: (err as Error).message }, 'third-party invite not redeemed');
        last = err;
      }
    }
    if (last) throw last instanceof MatrixError ? last : new MatrixError('M_UNKNOWN', 'Could not redeem the third-party invite', 502);
  }

  /** A /join with third_party_signed: the invite is made first unless the user is already invited or joined. */
  async redeemOnJoin(userId: string, roomId: string, signed: z.output<typeof signedBlock> & { sender: string }): Promise<void> {
    const m = await currentMembership(this.deps.db.knex, roomId, userId);
    if (m?.membership === 'invite' || m?.membership === 'join') return;
    await this.exchange(signed.sender, userId, roomId, signed);
  }

  /** Turns a third-party invite into a member invite of `target` (Synapse's exchange_third_party_invite). */
  async exchange(sender: string, target: string, roomId: string, signed: z.output<typeof signedBlock>): Promise<void> {
    if (await this.residentHere(roomId)) return this.exchangeHere(sender, target, roomId, signed);
    const own = this.deps.serverName;
    const destinations = [...new Set([serverNameOf(sender), serverNameOf(roomId)])].filter((s): s is string => !!s && s !== own);
    if (!destinations.length) throw notFound('Unknown room');
    const event = { type: 'm.room.member', room_id: roomId, sender, state_key: target, content: { membership: 'invite', third_party_invite: { signed } } };
    let last: unknown;
    for (const destination of destinations) {
      try {
        await this.deps.federation.request({
          destination,
          method: 'PUT',
          path: `/_matrix/federation/v1/exchange_third_party_invite/${encodeURIComponent(roomId)}`,
          body: event,
        });
        return;
      } catch (err) {
        this.deps.logger.info({ destination, roomId, reason: (err as Error).message }, 'exchange_third_party_invite failed');
        last = err;
      }
    }
    if (last instanceof FederationRequestError) throw last.forClient();
    throw new MatrixError('M_UNKNOWN', 'Could not redeem the third-party invite', 502);
  }

  /** Another server asks us, resident in the room, to make the member invite (exchange_third_party_invite). */
  async onExchangeRequest(roomIdParam: string, body: z.output<typeof exchangeBody>): Promise<void> {
    if (body.room_id !== roomIdParam) throw new MatrixError('M_INVALID_PARAM', 'room_id does not match the path');
    if (!(await this.residentHere(roomIdParam))) throw notFound('This server is not in the room');
    await this.exchangeHere(body.sender, body.state_key, roomIdParam, body.content.third_party_invite.signed);
  }

  private async residentHere(roomId: string): Promise<boolean> {
    const { db, rooms } = this.deps;
    return Boolean(await getRoom(db.knex, roomId)) && (await rooms.hasLocalMember(db.knex, roomId));
  }

  /** Checks the signed block (signature, key still valid at the identity server) and appends the invite. */
  private async exchangeHere(sender: string, target: string, roomId: string, signed: z.output<typeof signedBlock>): Promise<void> {
    const { db, rooms, identity } = this.deps;
    if (signed.mxid !== target) throw forbidden('The signed third-party invite is for another user');
    const id = await getCurrentStateEventId(db.knex, roomId, 'm.room.third_party_invite', signed.token);
    const invite: Pdu | undefined = id ? (await rooms.events.get(db.knex, id))?.pdu : undefined;
    if (!invite) throw forbidden('Could not find the third-party invite');
    if (invite.sender !== sender) throw forbidden('The third-party invite was sent by someone else');
    const key = keyThatSigned(signed, invite.content);
    if (!key) throw forbidden('The third-party invite signature does not match');
    if (key.keyValidityUrl !== undefined) {
      let valid: boolean;
      try {
        valid = await identity.isKeyValid(key.keyValidityUrl, key.publicKey);
      } catch {
        throw new MatrixError('M_UNKNOWN', 'Third party certificate could not be checked', 502);
      }
      if (!valid) throw forbidden('Third party certificate was invalid');
    }
    const displayName = invite.content.display_name;
    const thirdPartyInvite = { ...(typeof displayName === 'string' ? { display_name: displayName } : {}), signed };
    await rooms.inviteOnBehalf(sender, roomId, target, { membership: 'invite', third_party_invite: thirdPartyInvite });
  }
}
