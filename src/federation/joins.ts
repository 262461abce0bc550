/**
 * The joining server's side of joins (spec: Server-Server API, "Joining Rooms"): resolve the alias through
 * the alias's server (GET /query/directory), ask the room's servers for a join template (make_join), fill it
 * in, hash and sign it, send it (PUT /v2/send_join), check the state and auth chain that come back, and
 * import the room with the join event in one transaction (RoomService.importJoinedRoom).
 */
import type { Logger } from 'pino';
import type { SigningKey } from '../crypto/signing.js';
import { MatrixError, notFound } from '../errors.js';
import { computeEventId, eventIdOf, hashAndSignPdu } from '../rooms/eventFormat.js';
import { ROOM_VERSIONS, type RoomVersion } from '../rooms/roomVersions.js';
import type { Database } from '../storage/database.js';
import { transferDirectoryToReplacement } from '../rooms/upgrade.js';
import { getProfile } from '../storage/repositories/profiles.js';
import { getRoom } from '../storage/repositories/rooms.js';
import type { Pdu } from '../types/pdu.js';
import { FederationRequestError, MEMBERSHIP_FAILOVER_ERRCODES, finalRemoteRefusal, isUnknownEndpoint, unwrapV1Answer, type FederationClient } from './client.js';
import type { KeyStore } from './keyStore.js';
import { templateVersion } from './leaves.js';
import { checkReceivedPdu, type CheckedEvent } from './pipeline.js';
import { isValidServerName, serverNameOf } from './serverName.js';

export interface JoiningRooms {
  importJoinedRoom(input: { roomId: string; roomVersion: string; state: Pdu[]; authChain: Pdu[]; joinEvent: Pdu; joinEventId: string }): Promise<void>;
}

export interface JoinerDeps {
  db: Database;
  rooms: JoiningRooms;
  client: Pick<FederationClient, 'request'>;
  keyStore: Pick<KeyStore, 'verifyKeyFor'>;
  serverName: string;
  signingKey: SigningKey;
  clock: { now(): number };
  logger: Logger;
  /** The resident server got the join through send_join: the outbox must not send it there again. */
  markDelivered(eventId: string, destination: string): void;
  /** A join of a room this server already has (the alias pointed at a room we are in): the local path. */
  joinLocally(actor: { userId: string; deviceId?: string | undefined }, roomId: string, content: Record<string, unknown>, via: readonly string[]): Promise<string>;
}

/**
 * The signature RoomService.setRemoteJoiner takes: `content` is the member-event content the client asked
 * for (only `reason`: the profile is added here); `via` (servers to try) is for callers that know them.
 */
export type RemoteJoinerFn = (
  actor: { userId: string; deviceId?: string | undefined },
  roomIdOrAlias: string,
  content: Record<string, unknown>,
  via?: readonly string[],
) => Promise<string>;

const SEND_JOIN_TIMEOUT_MS = 120_000;

interface MakeJoinResponse {
  room_version?: unknown;
  event?: unknown;
}

interface SendJoinResponse {
  state?: unknown;
  auth_chain?: unknown;
  event?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export class RemoteJoiner {
  constructor(private readonly deps: JoinerDeps) {}

  readonly join: RemoteJoinerFn = async (actor, roomIdOrAlias, content, via = []) => {
    const { serverName } = this.deps;
    let roomId = roomIdOrAlias;
    let servers: string[] = [];
    if (roomIdOrAlias.startsWith('#')) {
      ({ roomId, servers } = await this.resolveAlias(roomIdOrAlias));
      // The alias may name a room this server knows: RoomService decides whether a resident must build the join.
      if (await getRoom(this.deps.db.knex, roomId)) return this.deps.joinLocally(actor, roomId, content, [...servers, ...via]);
    }
    if (!roomId.startsWith('!')) throw new MatrixError('M_INVALID_PARAM', 'Expected a room id or alias');
    const candidates = [...new Set([...servers, ...via, serverNameOf(roomId) ?? ''])].filter(
      (s) => s !== serverName && isValidServerName(s),
    );
    if (!candidates.length) throw notFound('No server to join the room through');

    let lastError: unknown;
    for (const destination of candidates) {
      try {
        return await this.joinVia(destination, actor.userId, roomId, content);
      } catch (err) {
        lastError = err;
        this.deps.logger.info({ destination, roomId, err: describe(err) }, 'remote join attempt failed');
        // A refusal by the room itself (not by one server's state of it) is final.
        if (err instanceof MatrixError && !(err instanceof FederationRequestError) && err.errcode !== 'M_UNKNOWN') throw err;
        // A remote 4xx (banned, incompatible room version …) reaches the client with its status and errcode.
        const refusal = finalRemoteRefusal(err, MEMBERSHIP_FAILOVER_ERRCODES);
        if (refusal) throw refusal;
      }
    }
    if (lastError instanceof FederationRequestError && lastError.remoteStatus === 404) throw notFound('Room not found');
    throw new MatrixError('M_UNKNOWN', 'Failed to join the room through any of its servers', 502);
  };

  /** GET /query/directory on the alias's server. */
  async resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }> {
    const server = serverNameOf(alias);
    if (!server) throw new MatrixError('M_INVALID_PARAM', 'Invalid room alias');
    if (server === this.deps.serverName) throw notFound(`Room alias ${alias} not found`);
    let res: { room_id?: unknown; servers?: unknown };
    try {
      res = await this.deps.client.request({ destination: server, method: 'GET', path: '/_matrix/federation/v1/query/directory', query: { room_alias: alias } });
    } catch (err) {
      if (err instanceof FederationRequestError && err.remoteStatus === 404) throw notFound(`Room alias ${alias} not found`);
      throw err;
    }
    if (typeof res?.room_id !== 'string' || !res.room_id.startsWith('!')) throw new MatrixError('M_UNKNOWN', `Bad directory answer from ${server}`, 502);
    const servers = Array.isArray(res.servers) ? res.servers.filter((s): s is string => typeof s === 'string') : [];
    return { roomId: res.room_id, servers: [...servers, server] };
  }

  private async joinVia(destination: string, userId: string, roomId: string, requested: Record<string, unknown>): Promise<string> {
    const { client, serverName, signingKey, clock } = this.deps;
    // make_join: our versions, the resident's template.
    const template = await client.request<MakeJoinResponse>({
      destination,
      method: 'GET',
      path: `/_matrix/federation/v1/make_join/${encodeURIComponent(roomId)}/${encodeURIComponent(userId)}`,
      query: { ver: [...ROOM_VERSIONS.keys()] },
    });
    const version = templateVersion(template);
    const skeleton = template.event;
    if (
      !isObject(skeleton) ||
      skeleton.type !== 'm.room.member' ||
      skeleton.state_key !== userId ||
      skeleton.sender !== userId ||
      skeleton.room_id !== roomId ||
      !isObject(skeleton.content)
    ) {
      throw new FederationRequestError(destination, 'bad_response', 'make_join template is not a join of this user');
    }

    // Fill in: our content, origin, timestamp; then hash, sign and derive the id.
    const profile = await getProfile(this.deps.db.knex, userId);
    const content: Record<string, unknown> = { ...requested };
    if (profile?.displayname && content.displayname === undefined) content.displayname = profile.displayname;
    if (profile?.avatar_url && content.avatar_url === undefined) content.avatar_url = profile.avatar_url;
    const via = skeleton.content.join_authorised_via_users_server;
    if (typeof via === 'string') content.join_authorised_via_users_server = via;
    content.membership = 'join';
    const { hashes: _h, signatures: _s, unsigned: _u, event_id: _e, ...fields } = skeleton;
    const draft = { ...fields, content, origin: serverName, origin_server_ts: clock.now(), signatures: {} } as unknown as Pdu;
    if (version.eventFormat === 'v1') draft.event_id = computeEventId(draft, version, serverName);
    let joinEvent = hashAndSignPdu(draft, serverName, signingKey, version);
    const joinEventId = eventIdOf(joinEvent, version);

    const res = await this.sendJoin(destination, roomId, joinEventId, joinEvent);
    // The resident's countersigned copy (restricted joins) replaces ours when it is the same event.
    if (isObject(res.event)) {
      try {
        const returned = await this.check(res.event, version, roomId);
        if (returned.eventId === joinEventId && !returned.redacted) joinEvent = returned.pdu;
      } catch (err) {
        this.deps.logger.warn({ destination, err: describe(err) }, 'send_join returned a bad event; keeping ours');
      }
    }
    const state = await this.checkAll(res.state, version, roomId, destination, 'state');
    const authChain = await this.checkAll(res.auth_chain, version, roomId, destination, 'auth_chain');
    if (!state.some((e) => e.pdu.type === 'm.room.create' && e.pdu.state_key === '')) {
      throw new FederationRequestError(destination, 'bad_response', 'send_join state has no create event');
    }
    this.deps.markDelivered(joinEventId, destination);
    await this.deps.rooms.importJoinedRoom({
      roomId,
      roomVersion: version.id,
      state: state.map((e) => e.pdu),
      authChain: authChain.map((e) => e.pdu),
      joinEvent,
      joinEventId,
    });
    this.deps.logger.info({ roomId, destination, state: state.length, authChain: authChain.length }, 'joined a remote room');
    const create = state.find((e) => e.pdu.type === 'm.room.create' && e.pdu.state_key === '');
    try {
      const moved = await transferDirectoryToReplacement(this.deps.db, roomId, create!.pdu.content);
      if (moved.length) this.deps.logger.info({ roomId, aliases: moved.length }, 'aliases moved to the replacement room');
    } catch (err) {
      this.deps.logger.warn({ roomId, err: describe(err) }, 'moving the directory entries of the upgraded room failed');
    }
    return roomId;
  }

  /** PUT /v2/send_join, or the deprecated /v1/send_join (answering `[200, body]`) for servers without v2, as Synapse. */
  private async sendJoin(destination: string, roomId: string, eventId: string, joinEvent: Pdu): Promise<SendJoinResponse> {
    const request = (v: string) =>
      this.deps.client.request<unknown>({
        destination,
        method: 'PUT',
        path: `/_matrix/federation/${v}/send_join/${encodeURIComponent(roomId)}/${encodeURIComponent(eventId)}`,
        body: joinEvent,
        timeoutMs: SEND_JOIN_TIMEOUT_MS,
        maxResponseBytes: 256 * 1024 * 1024,
      });
    let res: unknown;
    try {
      res = await request('v2');
    } catch (err) {
      if (!isUnknownEndpoint(err)) throw err;
      res = unwrapV1Answer(await request('v1'));
    }
    if (!isObject(res)) throw new FederationRequestError(destination, 'bad_response', 'send_join answer is not an object');
    return res;
  }

  private check(raw: unknown, version: RoomVersion, roomId: string): Promise<CheckedEvent> {
    return checkReceivedPdu(raw, version, (s, k, t) => this.deps.keyStore.verifyKeyFor(s, k, t), { roomId });
  }

  /** Checks every event of a send_join list (format, signatures, content hash); events that fail are dropped. */
  private async checkAll(list: unknown, version: RoomVersion, roomId: string, destination: string, what: string): Promise<CheckedEvent[]> {
    if (!Array.isArray(list)) throw new FederationRequestError(destination, 'bad_response', `send_join response without ${what}`);
    const out: CheckedEvent[] = [];
    const seen = new Set<string>();
    for (const raw of list) {
      try {
        const ev = await this.check(raw, version, roomId);
        if (seen.has(ev.eventId)) continue;
        seen.add(ev.eventId);
        out.push(ev);
      } catch (err) {
        this.deps.logger.warn({ destination, what, err: describe(err) }, 'send_join: event dropped');
      }
    }
    return out;
  }
}

function describe(err: unknown): string {
  if (err && typeof err === 'object' && 'detail' in err) return String((err as { detail: unknown }).detail);
  return err instanceof Error ? err.message : String(err);
}
