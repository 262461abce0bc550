/**
 * The inbound PDU pipeline (docs/architecture.md, "Federation"; spec: Server-Server API,
 * "Checks performed on receipt of a PDU"). Named steps, each its own function:
 *   format → signatures → content hash (redact on mismatch) → fetch missing auth events (outliers)
 *   → fetch missing prev events (/get_missing_events, bounded) → accept (auth against auth events, against
 *   the state before the event, soft-fail against current state: RoomService.acceptRemoteEvents).
 * Events of one room are processed one at a time; rooms never wait for each other.
 */
import type { Logger } from 'pino';
import { canonicalJsonBytes } from '../crypto/canonicalJson.js';
import { receivedPduProblem } from '../rooms/eventLimits.js';
import {
  checkContentHash,
  checkPduFormat,
  eventIdOf,
  impliedAuthEventIds,
  prevEventIds,
  redactPdu,
  requiredSignatureServers,
  roomIdOfEvent,
  verifyPduSignature,
} from '../rooms/eventFormat.js';
import type { RoomVersion } from '../rooms/roomVersions.js';
import type { Db, Database } from '../storage/database.js';
import { getForwardExtremities } from '../storage/repositories/events.js';
import { stateMapKey, type Pdu } from '../types/pdu.js';
import type { FederationClient } from './client.js';
import type { KeyStore } from './keyStore.js';

/** What the pipeline needs from RoomService (the remote-event methods; see roomService.ts). */
export interface FederatedRooms {
  roomVersion(db: Db, roomId: string): Promise<RoomVersion>;
  events: {
    get(db: Db, eventId: string): Promise<KnownEvent | undefined>;
    getMany(db: Db, ids: readonly string[]): Promise<Map<string, KnownEvent>>;
  };
  acceptRemoteEvents(
    roomId: string,
    events: Array<{ pdu: Pdu; eventId: string; missingPrevStates?: ReadonlyMap<string, ReadonlyMap<string, string>> }>,
  ): Promise<Array<{ eventId: string; outcome: 'accepted' | 'rejected' | 'soft_failed' | 'duplicate'; reason?: string }>>;
  storeOutliers(roomId: string, events: Array<{ pdu: Pdu; eventId: string }>): Promise<void>;
}

/** What the pipeline reads of a stored event. */
export interface KnownEvent {
  eventId: string;
  pdu: Pdu;
  outlier: boolean;
  rejected: boolean;
  stateAfter: number | null;
}

export type VerifyKeyFor = KeyStore['verifyKeyFor'];

export interface CheckedEvent {
  pdu: Pdu;
  eventId: string;
  /** The content hash did not match: `pdu` is the redacted form. */
  redacted: boolean;
}

export class PduCheckError extends Error {
  constructor(
    readonly step: 'format' | 'signatures' | 'event_id' | 'auth_events' | 'prev_events' | 'room',
    message: string,
  ) {
    super(message);
    this.name = 'PduCheckError';
  }
}

// ---------------------------------------------------------------------------------------------------------
// Steps

/** Step "format": structure for the room version, canonical JSON (strict integers from v6), size limits. */
export function checkFormat(raw: unknown, version: RoomVersion): string | null {
  const reason = checkPduFormat(raw, version);
  if (reason) return reason;
  const pdu = raw as Record<string, unknown>;
  // Spec "Size limits": the event in federation format with its signatures; `unsigned` is not the event.
  return receivedPduProblem(pdu, version, () => {
    const { unsigned: _u, ...event } = pdu;
    return canonicalJsonBytes(event, { strictIntegers: version.strictCanonicalJson }).length;
  });
}

/**
 * Step "signatures": every server `requiredSignatureServers` names must have signed the redacted event with
 * a key valid at origin_server_ts (from v5; older versions accept any key the server ever published).
 */
export async function checkSignatures(pdu: Pdu, version: RoomVersion, verifyKeyFor: VerifyKeyFor): Promise<string | null> {
  const atTs = version.enforceKeyValidity ? pdu.origin_server_ts : 0;
  for (const server of requiredSignatureServers(pdu, version)) {
    const sigs = pdu.signatures?.[server];
    if (!sigs || typeof sigs !== 'object') return `not signed by ${server}`;
    let ok = false;
    for (const keyId of Object.keys(sigs)) {
      if (!keyId.startsWith('ed25519:')) continue;
      const key = await verifyKeyFor(server, keyId, atTs);
      if (key !== undefined && verifyPduSignature(pdu, server, keyId, key, version)) {
        ok = true;
        break;
      }
    }
    if (!ok) return `no valid signature of ${server}`;
  }
  return null;
}

/** Step "content hash": a mismatch is not a rejection, the event is redacted instead (spec). */
export function applyContentHash(pdu: Pdu, version: RoomVersion): { pdu: Pdu; redacted: boolean } {
  if (checkContentHash(pdu)) return { pdu, redacted: false };
  return { pdu: redactPdu(pdu, version), redacted: true };
}

/** Format, signatures and content hash of a received PDU; `unsigned` (not covered by signatures) is dropped. */
export async function checkReceivedPdu(
  raw: unknown,
  version: RoomVersion,
  verifyKeyFor: VerifyKeyFor,
  expect: { roomId?: string; eventId?: string } = {},
): Promise<CheckedEvent> {
  const format = checkFormat(raw, version);
  if (format) throw new PduCheckError('format', format);
  const { unsigned: _u, ...rest } = raw as Pdu;
  const pdu = rest as Pdu;
  let eventId: string;
  try {
    eventId = eventIdOf(pdu, version);
  } catch (err) {
    throw new PduCheckError('event_id', (err as Error).message);
  }
  // v12 create events carry no room_id: their event id gives the room id.
  if (expect.roomId !== undefined && roomIdOfEvent(pdu, eventId) !== expect.roomId) throw new PduCheckError('room', 'event is for another room');
  if (expect.eventId !== undefined && eventId !== expect.eventId) throw new PduCheckError('event_id', 'event id does not match the event');
  const sig = await checkSignatures(pdu, version, verifyKeyFor);
  if (sig) throw new PduCheckError('signatures', sig);
  const hashed = applyContentHash(pdu, version);
  return { pdu: hashed.pdu, eventId, redacted: hashed.redacted };
}

/** Orders events so that every event comes after those of its auth_events and prev_events in the list. */
export function topologicalOrder<T extends { pdu: Pdu; eventId: string }>(events: readonly T[], version: RoomVersion): T[] {
  const byId = new Map(events.map((e) => [e.eventId, e]));
  const out: T[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const sorted = [...events].sort((a, b) => a.pdu.depth - b.pdu.depth || (a.eventId < b.eventId ? -1 : 1));
  const visit = (e: T) => {
    if (state.get(e.eventId)) return; // done, or a cycle (malicious): leave it where it is
    state.set(e.eventId, 'visiting');
    for (const id of [...impliedAuthEventIds(e.pdu, version), ...prevEventIds(e.pdu)]) {
      const dep = byId.get(id);
      if (dep) visit(dep);
    }
    state.set(e.eventId, 'done');
    out.push(e);
  };
  for (const e of sorted) visit(e);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The pipeline

export interface PipelineDeps {
  db: Database;
  rooms: FederatedRooms;
  keyStore: Pick<KeyStore, 'verifyKeyFor'>;
  client: Pick<FederationClient, 'request'>;
  serverName: string;
  logger: Logger;
  /** The room's m.room.server_acl allows `server` (federation/acl.ts); absent: no ACL checks. */
  serverAllowed?: (roomId: string, server: string) => Promise<boolean>;
}

export interface PipelineLimits {
  /** Events fetched per /get_missing_events call (spec default 10). */
  missingEventsLimit: number;
  /** GET /state_ids calls for prev events we lack, per received event. */
  maxStateFetches: number;
  /** Events (state and auth chain) accepted in one /state_ids answer. */
  maxStateEvents: number;
  /** Auth events fetched one by one (GET /event) for one incoming event. */
  maxAuthFetches: number;
}

export const DEFAULT_PIPELINE_LIMITS: PipelineLimits = { missingEventsLimit: 10, maxStateFetches: 5, maxStateEvents: 5000, maxAuthFetches: 100 };

export type PduResult = Record<string, never> | { error: string };

export class InboundPipeline {
  private readonly roomTails = new Map<string, Promise<unknown>>();
  readonly limits: PipelineLimits;

  constructor(
    private readonly deps: PipelineDeps,
    limits: Partial<PipelineLimits> = {},
  ) {
    this.limits = { ...DEFAULT_PIPELINE_LIMITS, ...limits };
  }

  /** Runs `fn` after everything queued for `roomId`: one room's events are processed one at a time. */
  withRoomLock<T>(roomId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.roomTails.get(roomId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.roomTails.set(roomId, tail);
    void tail.then(() => {
      if (this.roomTails.get(roomId) === tail) this.roomTails.delete(roomId);
    });
    return run;
  }

  private log(step: string, fields: Record<string, unknown>, msg: string): void {
    this.deps.logger.info({ step, ...fields }, msg);
  }

  /**
   * One PDU received from `origin` in a transaction: checks, fetches what is missing, accepts.
   * The caller holds the room lock.
   */
  async processPdu(origin: string, roomId: string, version: RoomVersion, raw: unknown): Promise<{ eventId: string; result: PduResult }> {
    if (this.deps.serverAllowed && !(await this.deps.serverAllowed(roomId, origin))) {
      const eventId = fallbackEventId(raw, version);
      this.log('acl', { origin, roomId, eventId }, 'inbound PDU refused: origin denied by the room server ACL');
      return { eventId, result: { error: `${origin} is denied by the room's server ACL` } };
    }
    let checked: CheckedEvent;
    try {
      checked = await checkReceivedPdu(raw, version, (s, k, t) => this.deps.keyStore.verifyKeyFor(s, k, t), { roomId });
    } catch (err) {
      const eventId = fallbackEventId(raw, version);
      this.log((err as PduCheckError).step ?? 'check', { origin, roomId, eventId, reason: (err as Error).message }, 'inbound PDU refused');
      return { eventId, result: { error: (err as Error).message } };
    }
    const { eventId } = checked;
    if (checked.redacted) this.log('content_hash', { origin, roomId, eventId }, 'content hash mismatch: event redacted');
    // From here on, as Synapse: the transaction answers {} for the event whatever becomes of it (rejected,
    // soft-failed, dropped for a gap in the DAG); the outcome is logged, not reported to the sender.
    try {
      const existing = await this.deps.rooms.events.get(this.deps.db.knex, eventId);
      // Known in the timeline already: nothing to do. Known as an outlier: the rooms core moves it in.
      if (existing && !existing.outlier) return { eventId, result: {} };
      await this.fetchMissingAuthEvents(origin, roomId, version, [checked]);
      if (!(await this.fillPrevGap(origin, roomId, version, checked))) return { eventId, result: {} };
      const [outcome] = await this.deps.rooms.acceptRemoteEvents(roomId, [{ pdu: checked.pdu, eventId }]);
      if (outcome?.outcome === 'rejected') this.log('auth', { origin, roomId, eventId, reason: outcome.reason }, 'inbound PDU rejected');
      if (outcome?.outcome === 'soft_failed') this.log('soft_fail', { origin, roomId, eventId, reason: outcome.reason }, 'inbound PDU soft-failed');
      return { eventId, result: {} };
    } catch (err) {
      if (err instanceof PduCheckError) {
        this.log(err.step, { origin, roomId, eventId, reason: err.message }, 'inbound PDU dropped');
        return { eventId, result: {} };
      }
      this.deps.logger.warn({ step: 'accept', err, origin, roomId, eventId }, 'inbound PDU failed');
      return { eventId, result: { error: 'failed to process the event' } };
    }
  }

  /** Ids among `ids` this server has not stored (in any form: auth events may be outliers). */
  private async missing(ids: readonly string[]): Promise<string[]> {
    if (!ids.length) return [];
    const found = await this.deps.rooms.events.getMany(this.deps.db.knex, ids);
    return ids.filter((id) => !found.has(id));
  }

  /**
   * Prev events not usable as such: unknown, or known only as outliers or rejected events (the state
   * before an event is computed from the state after each prev event in the timeline).
   */
  private async missingPrevs(ids: readonly string[], roomId: string): Promise<{ unknown: string[]; unusable: string[] }> {
    if (!ids.length) return { unknown: [], unusable: [] };
    const found = await this.deps.rooms.events.getMany(this.deps.db.knex, ids);
    const unknown: string[] = [];
    const unusable: string[] = [];
    for (const id of ids) {
      const ev = found.get(id);
      if (!ev) unknown.push(id);
      // A rejected (or soft-failed) event has a state (the state before it); an outlier has none.
      else if (ev.outlier || ev.stateAfter === null || roomIdOfEvent(ev.pdu, id) !== roomId) unusable.push(id);
    }
    return { unknown, unusable };
  }

  /**
   * Step "fetch missing auth events": GET /event/{id} from `origin` for every auth event (transitively) not
   * stored, each checked like any received PDU, then stored as outliers in auth order. Throws PduCheckError.
   */
  async fetchMissingAuthEvents(origin: string, roomId: string, version: RoomVersion, events: readonly CheckedEvent[]): Promise<void> {
    const fetched = new Map<string, CheckedEvent>();
    const known = new Set(events.map((e) => e.eventId));
    let wanted = await this.missing([...new Set(events.flatMap((e) => impliedAuthEventIds(e.pdu, version)))].filter((id) => !known.has(id)));
    while (wanted.length) {
      const next: string[] = [];
      for (const id of wanted) {
        if (fetched.has(id)) continue;
        if (fetched.size >= this.limits.maxAuthFetches) throw new PduCheckError('auth_events', 'too many missing auth events');
        const ev = await this.fetchEvent(origin, roomId, version, id);
        fetched.set(id, ev);
        for (const a of impliedAuthEventIds(ev.pdu, version)) if (!fetched.has(a) && !known.has(a)) next.push(a);
      }
      wanted = await this.missing([...new Set(next)]);
    }
    if (fetched.size) {
      const ordered = topologicalOrder([...fetched.values()], version);
      this.log('auth_events', { origin, roomId, count: ordered.length }, 'fetched missing auth events');
      await this.deps.rooms.storeOutliers(roomId, ordered.map(({ pdu, eventId }) => ({ pdu, eventId })));
    }
  }

  /** GET /_matrix/federation/v1/event/{eventId} from `origin`, checked. */
  async fetchEvent(origin: string, roomId: string, version: RoomVersion, eventId: string): Promise<CheckedEvent> {
    let res: { pdus?: unknown[] };
    try {
      res = await this.deps.client.request<{ pdus?: unknown[] }>({
        destination: origin,
        method: 'GET',
        path: `/_matrix/federation/v1/event/${encodeURIComponent(eventId)}`,
      });
    } catch {
      throw new PduCheckError('auth_events', `could not fetch event ${eventId} from ${origin}`);
    }
    const raw = Array.isArray(res?.pdus) ? res.pdus[0] : undefined;
    if (raw === undefined) throw new PduCheckError('auth_events', `${origin} did not return event ${eventId}`);
    return checkReceivedPdu(raw, version, (s, k, t) => this.deps.keyStore.verifyKeyFor(s, k, t), { roomId, eventId });
  }

  /**
   * Step "fetch missing prev events" (as Synapse): prev events not in our timeline (unknown, or outliers)
   * are asked for once with POST /get_missing_events (from our forward extremities to the event). The
   * events returned are accepted oldest first; where one of them still has prev events we lack, the state
   * after each of those is fetched with GET /state_ids and resolved with ours. Returns whether the event's
   * prev events are all in the timeline now; if not, the event is dropped (it would otherwise bring a
   * state we cannot check).
   */
  async fillPrevGap(origin: string, roomId: string, version: RoomVersion, target: CheckedEvent): Promise<boolean> {
    const db = this.deps.db.knex;
    const gap = async (pdu: Pdu) => {
      const { unknown, unusable } = await this.missingPrevs(prevEventIds(pdu), roomId);
      return [...unknown, ...unusable];
    };
    if (!(await gap(target.pdu)).length) return true;
    const extremities = await getForwardExtremities(db, roomId);
    const minDepth = extremities.length ? Math.min(...extremities.map((e) => e.depth)) : 0;
    let res: { events?: unknown[] } = {};
    try {
      res = await this.deps.client.request<{ events?: unknown[] }>({
        destination: origin,
        method: 'POST',
        path: `/_matrix/federation/v1/get_missing_events/${encodeURIComponent(roomId)}`,
        body: { earliest_events: extremities.map((e) => e.eventId), latest_events: [target.eventId], limit: this.limits.missingEventsLimit, min_depth: minDepth },
      });
    } catch (err) {
      this.log('prev_events', { origin, roomId, reason: (err as Error).message }, '/get_missing_events failed');
    }
    const pulled: CheckedEvent[] = [];
    for (const raw of Array.isArray(res?.events) ? res.events.slice(0, this.limits.missingEventsLimit) : []) {
      try {
        const ev = await checkReceivedPdu(raw, version, (s, k, t) => this.deps.keyStore.verifyKeyFor(s, k, t), { roomId });
        if (ev.eventId === target.eventId || pulled.some((p) => p.eventId === ev.eventId)) continue;
        const known = await this.deps.rooms.events.get(db, ev.eventId);
        if (known && !known.outlier) continue;
        pulled.push(ev);
      } catch (err) {
        this.log('prev_events', { origin, reason: (err as Error).message }, 'missing event refused');
      }
    }
    let stateFetches = 0;
    for (const ev of topologicalOrder(pulled, version)) {
      try {
        await this.fetchMissingAuthEvents(origin, roomId, version, [ev]);
        const missingPrevStates = new Map<string, ReadonlyMap<string, string>>();
        for (const prevId of await gap(ev.pdu)) {
          if (++stateFetches > this.limits.maxStateFetches) throw new PduCheckError('prev_events', 'too many prev events without state');
          missingPrevStates.set(prevId, await this.stateAfterRemoteEvent(origin, roomId, version, prevId));
        }
        const [outcome] = await this.deps.rooms.acceptRemoteEvents(roomId, [{ pdu: ev.pdu, eventId: ev.eventId, ...(missingPrevStates.size ? { missingPrevStates } : {}) }]);
        this.log('prev_events', { origin, eventId: ev.eventId, outcome: outcome?.outcome, stateFetched: missingPrevStates.size }, 'accepted a missing event');
      } catch (err) {
        if (!(err instanceof PduCheckError)) throw err;
        this.log('prev_events', { origin, eventId: ev.eventId, reason: err.message }, 'missing event dropped');
      }
    }
    const left = await gap(target.pdu);
    if (left.length) this.log('prev_events', { origin, roomId, eventId: target.eventId, missing: left.slice(0, 3) }, 'prev events could not be fetched: event dropped');
    return left.length === 0;
  }

  /**
   * The state after an event we do not have in the timeline, as `origin` tells it (GET /state_ids at the
   * event, then the event itself when it is state): the events are fetched, checked and stored as outliers;
   * those rejected against their auth events are left out.
   */
  async stateAfterRemoteEvent(origin: string, roomId: string, version: RoomVersion, eventId: string): Promise<Map<string, string>> {
    let res: { pdu_ids?: unknown; auth_chain_ids?: unknown };
    try {
      res = await this.deps.client.request<{ pdu_ids?: unknown; auth_chain_ids?: unknown }>({
        destination: origin,
        method: 'GET',
        path: `/_matrix/federation/v1/state_ids/${encodeURIComponent(roomId)}`,
        query: { event_id: eventId },
      });
    } catch {
      throw new PduCheckError('prev_events', `could not fetch the state at ${eventId} from ${origin}`);
    }
    const ids = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    const stateIds = ids(res?.pdu_ids);
    const wanted = [...new Set([eventId, ...stateIds, ...ids(res?.auth_chain_ids)])];
    if (wanted.length > this.limits.maxStateEvents) throw new PduCheckError('prev_events', `state at ${eventId} is too large`);
    const missing = await this.missing(wanted);
    const fetched: CheckedEvent[] = [];
    for (const id of missing) {
      try {
        fetched.push(await this.fetchEvent(origin, roomId, version, id));
      } catch (err) {
        this.log('prev_events', { origin, eventId: id, reason: (err as Error).message }, 'state event not fetched');
      }
    }
    if (fetched.length) await this.deps.rooms.storeOutliers(roomId, topologicalOrder(fetched, version).map(({ pdu, eventId: id }) => ({ pdu, eventId: id })));
    const known = await this.deps.rooms.events.getMany(this.deps.db.knex, [...stateIds, eventId]);
    const state = new Map<string, string>();
    for (const id of [...stateIds, eventId]) {
      const ev = known.get(id);
      if (!ev || ev.rejected || typeof ev.pdu.state_key !== 'string' || roomIdOfEvent(ev.pdu, id) !== roomId) continue;
      state.set(stateMapKey(ev.pdu.type, ev.pdu.state_key), id);
    }
    return state;
  }
}

/** The id a refused PDU is reported under: its event_id (v1) or its reference hash when computable. */
export function fallbackEventId(raw: unknown, version: RoomVersion | undefined): string {
  if (raw && typeof raw === 'object' && typeof (raw as Pdu).event_id === 'string') return (raw as Pdu).event_id!;
  if (version) {
    try {
      return eventIdOf(raw as Pdu, version);
    } catch {
      // fall through
    }
  }
  return '$unknown';
}
