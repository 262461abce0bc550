/**
 * Backfilling (spec: Server-Server API, "Backfilling and retrieving missing events").
 *
 * Serving side: GET /v1/backfill/{roomId}?v=…&limit=… walks back from the given events along prev_events
 * (the given events included), newest first, for servers with a member in the room. History visibility is
 * applied per server: an event in `shared` / `world_readable` history is served as is; under `invited` /
 * `joined` only when a user of the asking server was invited / joined at that event; otherwise the event
 * is served redacted (the DAG stays connected, the content does not leak).
 *
 * Asking side (Backfiller, installed on RoomReader): when /messages runs out of local history in a room
 * that has older events elsewhere, or is about to page over a gap in the middle of the DAG (prev events
 * never received, within 2 × limit below the page), ask a server in the room for the events before our
 * earliest ones (or before the gap), check
 * them like any received PDU, and store them in the timeline *behind* everything else: negative stream
 * orderings (never seen by /sync, which reads forward from positions ≥ 0), topological order by depth,
 * state from their prev events or, at the edge of what we have, from GET /state of the serving server.
 * Backfilled events never move forward extremities or current state and wake no one.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { forbidden, notFound } from '../errors.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';
import { impliedAuthEventIds, prevEventIds, redactsOf, roomIdOfEvent } from '../rooms/eventFormat.js';
import { checkAgainstAuthEvents, checkAgainstState } from '../rooms/remoteAppend.js';
import type { RoomService } from '../rooms/roomService.js';
import type { RoomVersion } from '../rooms/roomVersions.js';
import { parseHistoryVisibility } from '../rooms/visibility.js';
import type { Database } from '../storage/database.js';
import { deleteEventRow, getEvents, insertEvents, markRedacted, type StoredEvent } from '../storage/repositories/events.js';
import { stateMapKey, type Pdu } from '../types/pdu.js';
import type { ServerAclChecker } from './acl.js';
import type { FederationClient } from './client.js';
import { serversInRoom, servedPdu } from './eventApi.js';
import type { KeyStore } from './keyStore.js';
import { checkReceivedPdu, topologicalOrder, type CheckedEvent, type InboundPipeline } from './pipeline.js';
import { serverNameOf } from './serverName.js';

export const FEDERATION_V1 = ['/_matrix/federation/v1'] as const;

const MAX_BACKFILL = 100;
/** At most this many GET /state requests per backfill round (one per edge of what we have). */
const MAX_STATE_FETCHES = 4;
const MEMBER_PREFIX = 'm.room.member\u0000';
const HV_KEY = stateMapKey('m.room.history_visibility', '');

// ---------------------------------------------------------------------------------------------------------
// Serving

export interface BackfillServingDeps {
  db: Database;
  rooms: Pick<RoomService, 'roomVersion' | 'events' | 'state'>;
  acl: Pick<ServerAclChecker, 'assertAllowed'>;
  serverName: string;
  clock: { now(): number };
}

/** Whether `server` may see `ev` (spec: history visibility, applied to a server through its users). */
export async function visibleToServer(deps: Pick<BackfillServingDeps, 'db' | 'rooms'>, ev: StoredEvent, server: string): Promise<boolean> {
  if (ev.stateBefore === null) return true; // outliers: state and auth events, needed to check anything
  const db = deps.db.knex;
  const ids = await deps.rooms.state.stateIds(db, ev.stateBefore);
  const hvId = ids.get(HV_KEY);
  const hv = hvId ? parseHistoryVisibility((await deps.rooms.events.get(db, hvId))?.pdu.content.history_visibility) : 'shared';
  if (hv === 'world_readable' || hv === 'shared') return true;
  const memberIds: string[] = [];
  for (const [key, id] of ids) if (key.startsWith(MEMBER_PREFIX) && serverNameOf(key.slice(MEMBER_PREFIX.length)) === server) memberIds.push(id);
  const members = await deps.rooms.events.getMany(db, memberIds);
  const wanted = hv === 'invited' ? ['join', 'invite'] : ['join'];
  return [...members.values()].some((m) => wanted.includes(String(m.pdu.content.membership)));
}

export function backfillRoutes(deps: BackfillServingDeps): RouteDefinition[] {
  const { db, rooms, acl, serverName, clock } = deps;
  return [
    // Spec: GET /_matrix/federation/v1/backfill/{roomId}
    defineRoute({
      method: 'GET',
      prefixes: FEDERATION_V1,
      path: '/backfill/:roomId',
      auth: 'server',
      query: z.looseObject({ v: z.union([z.string(), z.array(z.string())]), limit: z.coerce.number().int().min(0) }),
      handler: async ({ params, query, server }) => {
        const roomId = params.roomId!;
        let version: RoomVersion;
        try {
          version = await rooms.roomVersion(db.knex, roomId);
        } catch {
          throw notFound('Unknown room');
        }
        await acl.assertAllowed(roomId, server.origin);
        if (!(await serversInRoom(db, roomId, serverName)).includes(server.origin)) throw forbidden(`${server.origin} is not in room ${roomId}`);
        const limit = Math.min(query.limit, MAX_BACKFILL);
        const start = (Array.isArray(query.v) ? query.v : [query.v]).slice(0, 20);
        const found = new Map<string, StoredEvent>();
        const seen = new Set<string>();
        // Newest first: a frontier ordered by depth, the deepest taken next.
        let frontier: StoredEvent[] = [...(await rooms.events.getMany(db.knex, start)).values()].filter((e) => roomIdOfEvent(e.pdu, e.eventId) === roomId);
        start.forEach((id) => seen.add(id));
        while (frontier.length && found.size < limit) {
          frontier.sort((a, b) => b.depth - a.depth);
          const ev = frontier.shift()!;
          if (ev.rejected) continue;
          found.set(ev.eventId, ev);
          const prevs = prevEventIds(ev.pdu).filter((id) => !seen.has(id));
          prevs.forEach((id) => seen.add(id));
          if (prevs.length) frontier.push(...[...(await rooms.events.getMany(db.knex, prevs)).values()].filter((e) => e.pdu.room_id === roomId));
        }
        const pdus: Pdu[] = [];
        for (const ev of found.values()) {
          const visible = await visibleToServer(deps, ev, server.origin);
          pdus.push(servedPdu(visible ? ev : { ...ev, redactedBy: ev.redactedBy ?? 'history_visibility' }, version));
        }
        return { origin: serverName, origin_server_ts: clock.now(), pdus };
      },
    }),
  ];
}

// ---------------------------------------------------------------------------------------------------------
// Asking

export interface BackfillerDeps {
  db: Database;
  rooms: RoomService;
  client: Pick<FederationClient, 'request'>;
  keyStore: Pick<KeyStore, 'verifyKeyFor'>;
  pipeline: Pick<InboundPipeline, 'fetchMissingAuthEvents'>;
  serverName: string;
  logger: Logger;
}

/** A gap asked about is not asked about again for this long (as Synapse's backoff of failed backfill points). */
const GAP_RETRY_MS = 60_000;
const GAP_MEMO_MAX = 10_000;

export class Backfiller {
  private readonly running = new Map<string, Promise<number>>();
  /** `roomId\0eventId` of missing prev events recently asked for, with when. */
  private readonly askedGaps = new Map<string, number>();

  /** Message retention: events sent before this time are not taken back in once purged here. */
  private historyFloor: ((roomId: string) => Promise<number | null>) | undefined;

  setHistoryFloor(fn: (roomId: string) => Promise<number | null>): void {
    this.historyFloor = fn;
  }

  constructor(private readonly deps: BackfillerDeps) {}

  /**
   * RoomReader's backfill hook: how many events were added to the room's timeline. Without `from`, before
   * its earliest events; with `from` (prev events missing in the middle of the DAG), before those.
   */
  readonly backfill = (roomId: string, _limit: number, from?: readonly string[]): Promise<number> => {
    let gaps: string[] | undefined;
    if (from) {
      gaps = this.freshGaps(roomId, from);
      if (!gaps.length) return Promise.resolve(0);
    }
    const key = gaps ? `${roomId}\u0000gaps` : roomId;
    const running = this.running.get(key);
    if (running) return running;
    // As Synapse: always ask for a full page (100), so a server that serves exactly the limit still reaches
    // events whose state we hold, whatever page size the client asked for.
    const p = this.run(roomId, MAX_BACKFILL, gaps).catch((err) => {
      this.deps.logger.warn({ roomId, err: err instanceof Error ? err.message : String(err) }, 'backfill failed');
      return 0;
    });
    this.running.set(key, p);
    void p.finally(() => this.running.delete(key));
    return p;
  };

  /** The gaps of `from` not asked about within GAP_RETRY_MS, now marked as asked. */
  private freshGaps(roomId: string, from: readonly string[]): string[] {
    const now = Date.now();
    const fresh: string[] = [];
    for (const id of from.slice(0, 20)) {
      const k = `${roomId}\u0000${id}`;
      const at = this.askedGaps.get(k);
      if (at !== undefined && now - at < GAP_RETRY_MS) continue;
      this.askedGaps.delete(k);
      this.askedGaps.set(k, now);
      fresh.push(id);
    }
    while (this.askedGaps.size > GAP_MEMO_MAX) this.askedGaps.delete(this.askedGaps.keys().next().value!);
    return fresh;
  }

  private verify = (s: string, k: string, t?: number) => this.deps.keyStore.verifyKeyFor(s, k, t);

  /** Prev events of the room's earliest timeline events that are not in the timeline themselves. */
  private async backwardExtremities(roomId: string): Promise<string[]> {
    const db = this.deps.db.knex;
    const base = () => db('events').where({ room_id: roomId, outlier: false }).whereNull('rejected_reason');
    const first = await base().orderBy('depth', 'asc').first('depth');
    if (!first) return [];
    const rows: Array<{ event_id: string }> = await base().andWhere('depth', '<=', Number(first.depth) + 1).orderBy('depth', 'asc').limit(50).select('event_id');
    const earliest = await this.deps.rooms.events.getMany(db, rows.map((r) => r.event_id));
    const prevs = [...new Set([...earliest.values()].flatMap((e) => prevEventIds(e.pdu)))];
    if (!prevs.length) return [];
    const known = await getEvents(db, prevs);
    return prevs.filter((id) => {
      const ev = known.get(id);
      return !ev || ev.outlier || ev.stateAfter === null;
    });
  }

  private async run(roomId: string, limit: number, gaps?: readonly string[]): Promise<number> {
    const { db, rooms, client, serverName, logger } = this.deps;
    let version: RoomVersion;
    try {
      version = await rooms.roomVersion(db.knex, roomId);
    } catch {
      return 0;
    }
    const from = gaps ? [...gaps] : await this.backwardExtremities(roomId);
    if (!from.length) return 0;
    const servers = (await serversInRoom(db, roomId, serverName)).filter((s) => s !== serverName);
    const roomServer = serverNameOf(roomId);
    servers.sort((a, b) => (a === roomServer ? -1 : b === roomServer ? 1 : 0));

    for (const origin of servers) {
      let res: { pdus?: unknown };
      try {
        res = await client.request<{ pdus?: unknown }>({
          destination: origin,
          method: 'GET',
          path: `/_matrix/federation/v1/backfill/${encodeURIComponent(roomId)}`,
          query: { v: from.slice(0, 20), limit: String(limit) },
        });
      } catch (err) {
        logger.info({ roomId, origin, err: err instanceof Error ? err.message : String(err) }, 'backfill request failed');
        continue;
      }
      const checked: CheckedEvent[] = [];
      for (const raw of Array.isArray(res?.pdus) ? res.pdus.slice(0, MAX_BACKFILL + 20) : []) {
        try {
          checked.push(await checkReceivedPdu(raw, version, this.verify, { roomId }));
        } catch (err) {
          logger.info({ roomId, origin, reason: (err as Error).message }, 'backfilled event refused');
        }
      }
      const stored = await this.store(origin, roomId, version, checked);
      logger.info({ roomId, origin, received: checked.length, stored }, 'backfilled');
      return stored;
    }
    return 0;
  }

  /** Stores checked backfilled events in the timeline, oldest first; returns how many were added. */
  private async store(origin: string, roomId: string, version: RoomVersion, received: CheckedEvent[]): Promise<number> {
    const { db, rooms, logger } = this.deps;
    const existing = await getEvents(db.knex, received.map((e) => e.eventId));
    const floor = (await this.historyFloor?.(roomId)) ?? null;
    const fresh = topologicalOrder(
      received.filter((e) => {
        const ev = existing.get(e.eventId);
        // State stays (as after a purge here); older messages would only be purged again.
        if (floor !== null && typeof e.pdu.state_key !== 'string' && e.pdu.origin_server_ts < floor) return false;
        return !ev || ev.outlier;
      }),
      version,
    );
    if (!fresh.length) return 0;
    try {
      await this.deps.pipeline.fetchMissingAuthEvents(origin, roomId, version, fresh);
    } catch (err) {
      logger.info({ roomId, origin, reason: (err as Error).message }, 'backfill: some auth events are missing');
    }

    // Events at the edge of what we have (some prev event neither stored in the timeline nor in this batch)
    // take their state from the serving server.
    const batchIds = new Set(fresh.map((e) => e.eventId));
    const prevs = await getEvents(db.knex, [...new Set(fresh.flatMap((e) => prevEventIds(e.pdu)))]);
    const remoteState = new Map<string, Map<string, string>>();
    for (const ev of fresh) {
      const atEdge = prevEventIds(ev.pdu).some((id) => {
        if (batchIds.has(id)) return false;
        const p = prevs.get(id);
        return !p || p.outlier || p.stateAfter === null || roomIdOfEvent(p.pdu, p.eventId) !== roomId;
      });
      if (!prevEventIds(ev.pdu).length) {
        remoteState.set(ev.eventId, new Map()); // the create event: nothing before it
        continue;
      }
      if (!atEdge) continue;
      if (remoteState.size >= MAX_STATE_FETCHES) break;
      const state = await this.fetchState(origin, roomId, version, ev.eventId);
      if (state) remoteState.set(ev.eventId, state);
    }

    const added: string[] = [];
    await rooms.write(roomId, async (ctx, trx) => {
      // This job writes through trx itself: the batch must open its savepoint first.
      await ctx.willWrite();
      const min = await trx('events').min({ m: 'stream_ordering' }).first();
      let next = Math.min(0, Number(min?.m ?? 0)) - 1;
      for (const ev of fresh) {
        const { pdu, eventId } = ev;
        const current = (await getEvents(trx, [eventId])).get(eventId);
        if (current && !current.outlier) continue;
        const authIds = impliedAuthEventIds(pdu, version);
        const auth = await getEvents(trx, authIds);
        if (auth.size !== authIds.length) continue;
        if (checkAgainstAuthEvents(pdu, authIds.map((id) => auth.get(id)!.pdu), version)) continue;

        let beforeGroup: number;
        const given = remoteState.get(eventId);
        if (given) {
          beforeGroup = await rooms.state.createGroup(trx, roomId, null, given);
          ctx.result.createdGroups.push(beforeGroup);
        } else {
          const prevRows = await getEvents(trx, prevEventIds(pdu));
          // A prev event of another room (or not in the timeline) gives no state here.
          const groups = [...new Set([...prevRows.values()].map((p) => (p.outlier || p.rejected || roomIdOfEvent(p.pdu, p.eventId) !== roomId ? null : p.stateAfter)))];
          if (prevRows.size !== prevEventIds(pdu).length || groups.length !== 1 || groups[0] === null || groups[0] === undefined) continue;
          beforeGroup = groups[0];
        }
        const beforeIds = await rooms.state.stateIds(trx, beforeGroup);
        const beforeEvents = await getEvents(trx, [...beforeIds.values()]);
        const beforeState = new Map<string, Pdu>();
        for (const [key, id] of beforeIds) {
          const e = beforeEvents.get(id);
          if (e) beforeState.set(key, e.pdu);
        }
        if (checkAgainstState(pdu, beforeState, version)) continue;

        const key = typeof pdu.state_key === 'string' ? stateMapKey(pdu.type, pdu.state_key) : undefined;
        let afterGroup = beforeGroup;
        if (key) {
          afterGroup = await rooms.state.createGroup(trx, roomId, beforeGroup, new Map([[key, eventId]]));
          ctx.result.createdGroups.push(afterGroup);
        }
        if (current) await deleteEventRow(trx, eventId);
        const replaced = key ? beforeIds.get(key) : undefined;
        await insertEvents(trx, [{ streamOrdering: next--, eventId, pdu, stateBefore: beforeGroup, stateAfter: afterGroup, ...(replaced ? { replacesState: replaced } : {}) }]);
        const redacts = redactsOf(pdu, version);
        if (pdu.type === 'm.room.redaction' && redacts) await markRedacted(trx, eventId, redacts);
        const redaction = await trx('redactions').where({ redacts: eventId }).first('event_id');
        if (redaction) await trx('events').where({ event_id: eventId }).whereNull('redacted_by').update({ redacted_by: redaction.event_id });
        added.push(eventId);
      }
    });
    for (const id of added) rooms.events.invalidate(id);
    return added.length;
  }

  /** GET /state/{roomId}?event_id= : the state before the event, its events stored as outliers. */
  private async fetchState(origin: string, roomId: string, version: RoomVersion, eventId: string): Promise<Map<string, string> | undefined> {
    const { client, rooms, logger, db } = this.deps;
    let res: { pdus?: unknown; auth_chain?: unknown };
    try {
      res = await client.request({ destination: origin, method: 'GET', path: `/_matrix/federation/v1/state/${encodeURIComponent(roomId)}`, query: { event_id: eventId } });
    } catch (err) {
      logger.info({ roomId, origin, eventId, err: err instanceof Error ? err.message : String(err) }, 'backfill: state request failed');
      return undefined;
    }
    const check = async (list: unknown) => {
      const out: CheckedEvent[] = [];
      for (const raw of Array.isArray(list) ? list : []) {
        try {
          out.push(await checkReceivedPdu(raw, version, this.verify, { roomId }));
        } catch {
          // dropped; the state below simply lacks it
        }
      }
      return out;
    };
    const state = await check(res?.pdus);
    const chain = await check(res?.auth_chain);
    const all = new Map([...chain, ...state].map((e) => [e.eventId, e]));
    const known = await getEvents(db.knex, [...all.keys()]);
    const unknown = topologicalOrder([...all.values()].filter((e) => !known.has(e.eventId)), version);
    if (unknown.length) await rooms.storeOutliers(roomId, unknown.map(({ pdu, eventId: id }) => ({ pdu, eventId: id })));
    const ids = new Map<string, string>();
    for (const e of state) if (typeof e.pdu.state_key === 'string') ids.set(stateMapKey(e.pdu.type, e.pdu.state_key), e.eventId);
    return ids;
  }
}
