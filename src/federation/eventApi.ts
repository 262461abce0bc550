/**
 * Serving room events to other servers (spec: Server-Server API, "Retrieving events", "Querying for
 * information"): GET /event, POST /get_missing_events, GET /state_ids, GET /state, GET /event_auth and
 * GET /query/directory. Room data is only given to servers with a joined member in the room.
 */
import { z } from 'zod';
import { MatrixError, forbidden, notFound } from '../errors.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import { eventIdOf, impliedAuthEventIds, prevEventIds, redactPdu, roomIdOfEvent } from '../rooms/eventFormat.js';
import type { RoomVersion } from '../rooms/roomVersions.js';
import type { Database } from '../storage/database.js';
import { roomMembers } from '../storage/repositories/state.js';
import { erasedUserIds } from '../storage/repositories/users.js';
import type { Pdu } from '../types/pdu.js';
import { federationPdu } from './outbox.js';
import type { FederatedRooms } from './pipeline.js';
import { serverNameOf } from './serverName.js';

export const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;

export interface ServingRooms extends Pick<FederatedRooms, 'roomVersion'> {
  events: {
    get(db: Database['knex'], eventId: string): Promise<{ eventId: string; pdu: Pdu; redactedBy: string | null } | undefined>;
    getMany(db: Database['knex'], ids: readonly string[]): Promise<Map<string, { eventId: string; pdu: Pdu; redactedBy: string | null }>>;
  };
  stateAndAuthChain(roomId: string, eventId: string): Promise<{ state: Pdu[]; authChain: Pdu[] }>;
  resolveAlias(alias: string): Promise<{ room_id: string }>;
}

export interface EventApiDeps {
  db: Database;
  rooms: ServingRooms;
  serverName: string;
  clock: { now(): number };
  /** Server ACLs (federation/acl.ts): a denied server gets 403 from every room endpoint here. */
  acl?: { allowed(roomId: string, server: string): Promise<boolean> };
}

/** Servers with a joined member in the room now, ours first. */
export async function serversInRoom(db: Database, roomId: string, ownServer: string): Promise<string[]> {
  const servers = new Set<string>();
  for (const userId of await roomMembers(db.knex, roomId, ['join'])) {
    const s = serverNameOf(userId);
    if (s) servers.add(s);
  }
  const out = [...servers].sort();
  return out.includes(ownServer) ? [ownServer, ...out.filter((s) => s !== ownServer)] : out;
}

/** The PDU as served: redacted events in their redacted form (signatures still hold), no `unsigned`. */
export function servedPdu(ev: { pdu: Pdu; redactedBy: string | null }, version: RoomVersion): Pdu {
  return ev.redactedBy ? redactPdu(ev.pdu, version) : federationPdu(ev.pdu);
}

export function eventApiRoutes(deps: EventApiDeps): RouteDefinition[] {
  const { db, rooms, serverName, clock, acl } = deps;
  const assertInRoom = async (origin: string, roomId: string) => {
    if (acl && !(await acl.allowed(roomId, origin))) throw forbidden(`${origin} is denied by the server ACL of ${roomId}`);
    if (!(await serversInRoom(db, roomId, serverName)).includes(origin)) throw forbidden(`${origin} is not in room ${roomId}`);
  };
  const versionOf = async (roomId: string) => {
    try {
      return await rooms.roomVersion(db.knex, roomId);
    } catch {
      throw notFound('Unknown room');
    }
  };
  const envelope = (pdus: Pdu[]) => ({ origin: serverName, origin_server_ts: clock.now(), pdus });
  // As Synapse: events of a user erased at deactivation are served redacted (GDPR erasure).
  const withErasure = async <T extends { pdu: Pdu; redactedBy: string | null }>(evs: T[]): Promise<T[]> => {
    const erased = await erasedUserIds(db.knex, evs.map((e) => e.pdu.sender));
    return erased.size ? evs.map((e) => (erased.has(e.pdu.sender) && !e.redactedBy ? { ...e, redactedBy: 'erased' } : e)) : evs;
  };
  const eventInRoom = async (roomId: string, eventId: string) => {
    const ev = await rooms.events.get(db.knex, eventId);
    if (!ev || roomIdOfEvent(ev.pdu, ev.eventId) !== roomId) throw notFound('Unknown event');
    return ev;
  };

  return [
    // Spec: GET /_matrix/federation/v1/event/{eventId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/event/:eventId',
      auth: 'server',
      handler: async ({ params, server }) => {
        const ev = await rooms.events.get(db.knex, params.eventId!);
        const roomId = ev ? roomIdOfEvent(ev.pdu, ev.eventId) : undefined;
        if (!ev || !roomId) throw notFound('Unknown event');
        // Same answer for "unknown" and "not yours to see": no probing for event ids.
        if (!(await serversInRoom(db, roomId, serverName)).includes(server.origin)) throw notFound('Unknown event');
        if (acl && !(await acl.allowed(roomId, server.origin))) throw forbidden(`${server.origin} is denied by the room's server ACL`);
        const [served] = await withErasure([ev]);
        return envelope([servedPdu(served!, await versionOf(roomId))]);
      },
    }),
    // Spec: POST /_matrix/federation/v1/get_missing_events/{roomId}
    defineRoute({
      method: 'POST',
      prefixes: FEDERATION_V1,
      path: '/get_missing_events/:roomId',
      auth: 'server',
      body: z
        .object({
          // Synapse reads both as empty lists when absent (an empty body is answered with no events).
          earliest_events: z.array(z.string()).max(100).default([]),
          latest_events: z.array(z.string()).max(20).default([]),
          limit: z.number().int().optional(),
          min_depth: z.number().int().optional(),
        })
        .loose(),
      handler: async ({ params, body, server }) => {
        const roomId = params.roomId!;
        const version = await versionOf(roomId);
        await assertInRoom(server.origin, roomId);
        const limit = Math.max(0, Math.min(body.limit ?? 10, 100));
        const minDepth = body.min_depth ?? 0;
        const seen = new Set<string>([...body.earliest_events, ...body.latest_events]);
        const latest = await rooms.events.getMany(db.knex, body.latest_events);
        let frontier = [...latest.values()].filter((e) => e.pdu.room_id === roomId).flatMap((e) => prevEventIds(e.pdu));
        const found: Array<{ pdu: Pdu; redactedBy: string | null }> = [];
        // Breadth-first back from latest_events, stopping at earliest_events, min_depth and limit.
        while (frontier.length && found.length < limit) {
          const ids = [...new Set(frontier.filter((id) => !seen.has(id)))];
          ids.forEach((id) => seen.add(id));
          const evs = await rooms.events.getMany(db.knex, ids);
          frontier = [];
          for (const id of ids) {
            const ev = evs.get(id);
            if (!ev || ev.pdu.room_id !== roomId || ev.pdu.depth < minDepth) continue;
            if (found.length >= limit) break;
            found.push(ev);
            frontier.push(...prevEventIds(ev.pdu));
          }
        }
        found.sort((a, b) => a.pdu.depth - b.pdu.depth);
        return { events: (await withErasure(found)).map((e) => servedPdu(e, version)) };
      },
    }),
    // Spec: GET /_matrix/federation/v1/state_ids/{roomId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/state_ids/:roomId',
      auth: 'server',
      query: z.object({ event_id: z.string() }),
      handler: async ({ params, query, server }) => {
        const roomId = params.roomId!;
        const version = await versionOf(roomId);
        await assertInRoom(server.origin, roomId);
        await eventInRoom(roomId, query.event_id);
        const { state, authChain } = await rooms.stateAndAuthChain(roomId, query.event_id);
        return { pdu_ids: state.map((p) => eventIdOf(p, version)), auth_chain_ids: authChain.map((p) => eventIdOf(p, version)) };
      },
    }),
    // Spec: GET /_matrix/federation/v1/state/{roomId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/state/:roomId',
      auth: 'server',
      query: z.object({ event_id: z.string() }),
      handler: async ({ params, query, server }) => {
        const roomId = params.roomId!;
        await versionOf(roomId);
        await assertInRoom(server.origin, roomId);
        await eventInRoom(roomId, query.event_id);
        const { state, authChain } = await rooms.stateAndAuthChain(roomId, query.event_id);
        return { pdus: state.map(federationPdu), auth_chain: authChain.map(federationPdu) };
      },
    }),
    // Spec: GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/event_auth/:roomId/:eventId',
      auth: 'server',
      handler: async ({ params, server }) => {
        const roomId = params.roomId!;
        const version = await versionOf(roomId);
        await assertInRoom(server.origin, roomId);
        const target = await eventInRoom(roomId, params.eventId!);
        const chain = new Map<string, { pdu: Pdu; redactedBy: string | null }>();
        let wanted = impliedAuthEventIds(target.pdu, version);
        while (wanted.length) {
          const evs = await rooms.events.getMany(db.knex, wanted);
          const next: string[] = [];
          for (const [id, ev] of evs) {
            if (chain.has(id)) continue;
            chain.set(id, ev);
            next.push(...impliedAuthEventIds(ev.pdu, version).filter((a) => !chain.has(a)));
          }
          wanted = [...new Set(next)];
        }
        return { auth_chain: [...chain.values()].map((e) => servedPdu(e, version)) };
      },
    }),
    // Spec: Server-Server API, "Querying for information" — GET /_matrix/federation/v1/query/directory
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/query/directory',
      auth: 'server',
      query: z.object({ room_alias: z.string() }),
      handler: async ({ query }) => {
        if (!query.room_alias.startsWith('#') || serverNameOf(query.room_alias) !== serverName) {
          throw new MatrixError('M_NOT_FOUND', 'Room alias not found');
        }
        // Local only (checked above); an alias an application service claims is created on query, as for clients.
        const { room_id: roomId } = await rooms.resolveAlias(query.room_alias);
        const servers = await serversInRoom(db, roomId, serverName);
        return { room_id: roomId, servers: servers.length ? servers : [serverName] };
      },
    }),
  ];
}
