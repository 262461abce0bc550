import type { Knex } from 'knex';
import { MatrixError } from '../errors.js';
import type { SigningKey } from '../crypto/signing.js';
import type { Clock } from '../serviceDeps.js';
import { deleteEventRow, getForwardExtremities, insertEvents, markRedacted, maxStreamOrdering, updateForwardExtremities, type NewEvent, type StoredEvent } from '../storage/repositories/events.js';
import { getRoom, insertRoom, setCurrentStateGroup } from '../storage/repositories/rooms.js';
import { deleteCurrentState, setCurrentState } from '../storage/repositories/state.js';
import { parseStateMapKey, stateMapKey, type Pdu, type StateMap } from '../types/pdu.js';
import { LruCache } from '../util/lru.js';
import { checkAuth, authTypesForEvent, powerLevelFor, userPowerLevel, withImpliedCreate } from './authRules.js';
import { buildPdu, impliedAuthEventIds, prevEventIds, redactsOf, roomIdFromCreateEventId, roomIdOfEvent, serverNameOf, type PduSkeleton } from './eventFormat.js';
import { assertValidLocalEvent, pduSizeProblem } from './eventLimits.js';
import { checkAgainstAuthEvents, checkAgainstState, type RemoteOutcome } from './remoteAppend.js';
import { loadStateResolutionEvents, resolveState } from './stateResolution/index.js';
import type { EventStore } from './eventStore.js';
import { getRoomVersion, type RoomVersion } from './roomVersions.js';
import type { StateStore } from './stateStore.js';

const MAX_PREV_EVENTS = 10;
const CREATE_KEY = stateMapKey('m.room.create', '');

/** The skeleton of a locally built event: one function, so a room id predicted from a create event matches the append. */
function localSkeleton(
  draft: EventDraft,
  roomId: string,
  prevEvents: string[],
  authEvents: string[],
  depth: number,
  now: number,
): PduSkeleton {
  return {
    room_id: roomId,
    sender: draft.sender,
    type: draft.type,
    ...(draft.stateKey !== undefined ? { state_key: draft.stateKey } : {}),
    content: draft.content,
    prev_events: prevEvents,
    auth_events: authEvents,
    depth,
    origin_server_ts: draft.originServerTs ?? now,
    ...(draft.redacts !== undefined ? { redacts: draft.redacts } : {}),
  };
}

export interface EventDraft {
  type: string;
  stateKey?: string;
  content: Record<string, unknown>;
  sender: string;
  redacts?: string;
  originServerTs?: number;
}

export interface AppendMeta {
  senderDevice?: string;
  txnId?: string;
}

/** A point in a context's history a failed job rolls back to (see RoomWriteContext.checkpoint). */
export interface WriteCheckpoint {
  stateMap: StateMap;
  stateById: Map<string, Pdu>;
  ownsState: boolean;
  currentGroup: number | null;
  extremities: Array<{ eventId: string; depth: number }>;
  pendingInserts: Array<NewEvent & { streamOrdering: number }>;
  pendingLength: number;
  flushedLength: number;
  events: number;
  createdGroups: number;
  redactedTargets: number;
}

/** What a rolled-back job leaves behind for the caches to forget: its state groups and event ids. */
export interface RolledBack {
  groups: number[];
  eventIds: string[];
}

/** One in-place change to a state map, undone when the job that made it fails. */
interface Undo<V> {
  map: Map<string, V>;
  key: string;
  had: boolean;
  prev: V | undefined;
}

/** What a committed write produced: the events, and who must be woken. */
export interface WriteResult {
  events: StoredEvent[];
  notifyUsers: Set<string>;
  createdGroups: number[];
  redactedTargets: string[];
}

/**
 * One room's write unit inside a stream-write transaction: builds real PDUs of the room version from the
 * current state and forward extremities, checks them against the auth rules and persists them.
 */
export class RoomWriteContext {
  readonly result: WriteResult = { events: [], notifyUsers: new Set(), createdGroups: [], redactedTargets: [] };

  private ownsState = false;
  private initialExtremities: string[];
  private pendingInserts: Array<NewEvent & { streamOrdering: number }> = [];
  /** Ids of the rows inserted so far, so a rolled-back job's rows leave the event cache. */
  private flushedIds: string[] = [];
  private undoLog: Array<Undo<Pdu>> = [];
  /** Called before this context's first database write of a job (the batch opens a savepoint there). */
  private beforeWrite: (() => Promise<void>) | undefined;

  constructor(
    private readonly trx: Knex.Transaction,
    private readonly deps: RoomWriterDeps,
    private readonly stream: StreamAllocator,
    readonly roomId: string,
    readonly version: RoomVersion,
    /** State after the last appended event; shared with the head cache until the first state event. */
    private stateMap: StateMap,
    private currentGroup: number | null,
    private extremities: Array<{ eventId: string; depth: number }>,
    private stateById: Map<string, Pdu>,
  ) {
    this.initialExtremities = extremities.map((e) => e.eventId);
  }

  get state(): ReadonlyMap<string, Pdu> {
    return this.stateMap;
  }

  /** The room's head after this context's appends, for the writer's cache once committed. */
  head(): RoomHead {
    return { version: this.version, group: this.currentGroup, extremities: this.extremities, state: this.stateMap, stateById: this.stateById };
  }

  get stateGroup(): number | null {
    return this.currentGroup;
  }

  /**
   * Marks the start of a job: `rollback` returns the context to this point. `beforeWrite` runs before
   * the job's first database write, so the caller can open a savepoint only for jobs that write.
   */
  checkpoint(beforeWrite?: () => Promise<void>): WriteCheckpoint {
    this.beforeWrite = beforeWrite;
    this.undoLog = [];
    return {
      stateMap: this.stateMap,
      stateById: this.stateById,
      ownsState: this.ownsState,
      currentGroup: this.currentGroup,
      extremities: this.extremities,
      pendingInserts: this.pendingInserts,
      pendingLength: this.pendingInserts.length,
      flushedLength: this.flushedIds.length,
      events: this.result.events.length,
      createdGroups: this.result.createdGroups.length,
      redactedTargets: this.result.redactedTargets.length,
    };
  }

  /** Undoes everything a failed job did in memory; its database writes are rolled back by the caller. */
  rollback(cp: WriteCheckpoint): RolledBack {
    for (let i = this.undoLog.length - 1; i >= 0; i--) {
      const u = this.undoLog[i]!;
      if (u.had) u.map.set(u.key, u.prev!);
      else u.map.delete(u.key);
    }
    this.undoLog = [];
    // Rows flushed during the job were rolled back with it; the earlier jobs' rows among them are pending again.
    const flushedDuringJob = this.flushedIds.splice(cp.flushedLength);
    cp.pendingInserts.length = cp.pendingLength;
    const dropped = this.result.events.splice(cp.events).map((e) => e.eventId);
    this.pendingInserts = cp.pendingInserts;
    this.stateMap = cp.stateMap;
    this.stateById = cp.stateById;
    this.ownsState = cp.ownsState;
    this.currentGroup = cp.currentGroup;
    this.extremities = cp.extremities;
    this.result.redactedTargets.length = cp.redactedTargets;
    this.beforeWrite = undefined;
    return { groups: this.result.createdGroups.splice(cp.createdGroups), eventIds: [...new Set([...flushedDuringJob, ...dropped])] };
  }

  /** Events this context inserted so far (the event cache may hold them; a rollback must drop them). */
  get writtenEventIds(): readonly string[] {
    return this.flushedIds;
  }

  /** Ends a job that succeeded. */
  release(): void {
    this.beforeWrite = undefined;
    this.undoLog = [];
  }

  /** Every write to the database by this context, or by a job through its transaction, comes after this. */
  async willWrite(): Promise<void> {
    const hook = this.beforeWrite;
    this.beforeWrite = undefined;
    if (hook) await hook();
  }

  /** Sets a state map entry, remembering the old value when the map may be rolled back. */
  private setState<V extends Pdu>(map: Map<string, V>, key: string, value: V | undefined): void {
    (this.undoLog as Array<Undo<V>>).push({ map, key, had: map.has(key), prev: map.get(key) });
    if (value === undefined) map.delete(key);
    else map.set(key, value);
  }

  /**
   * Erasure: the stored JSON of some events was replaced by their redacted form; current state entries among
   * them take that form too, so the cached head (stripped state, templates) serves no old content.
   */
  replaceStatePdus(pruned: ReadonlyMap<string, Pdu>): void {
    const hits = [...pruned.keys()].filter((id) => this.stateById.has(id));
    if (!hits.length) return;
    if (!this.ownsState) {
      this.stateMap = new Map(this.stateMap);
      this.stateById = new Map(this.stateById);
      this.ownsState = true;
    }
    for (const id of hits) {
      const pdu = pruned.get(id)!;
      if (pdu.state_key === undefined) continue;
      this.setState(this.stateMap, stateMapKey(pdu.type, pdu.state_key), pdu);
      this.setState(this.stateById, id, pdu);
    }
  }

  membershipOf(userId: string): string | undefined {
    const ev = this.state.get(stateMapKey('m.room.member', userId));
    return typeof ev?.content.membership === 'string' ? ev.content.membership : undefined;
  }

  async append(draft: EventDraft, meta: AppendMeta = {}): Promise<StoredEvent> {
    const { version } = this;
    const authKeys = authTypesForEvent(draft.type, draft.stateKey, draft.content, draft.sender, version);
    const authEvents: Pdu[] = [];
    const authIds: string[] = [];
    for (const [type, stateKey] of authKeys) {
      const ev = this.state.get(stateMapKey(type, stateKey));
      if (ev) {
        authEvents.push(ev);
        authIds.push(this.idOf(ev));
      }
    }
    const prev = this.extremities.slice(0, MAX_PREV_EVENTS);
    const depth = prev.reduce((m, e) => Math.max(m, e.depth), 0) + 1;
    const hashLookup = (id: string) => this.stateById.get(id)?.hashes ?? this.deps.lastKnownHashes.get(id);
    // Callers validate drafts before the batch; this catches what they could not see (a profile, a template).
    assertValidLocalEvent({ ...draft, roomId: this.roomId }, version);
    const { pdu, eventId } = buildPdu(
      localSkeleton(draft, this.roomId, prev.map((e) => e.eventId), authIds, depth, this.deps.clock.now()),
      version,
      { serverName: this.deps.serverName, key: this.deps.signingKey, hashLookup },
    );
    // JSON.stringify of a valid event has the length of its canonical JSON (only the key order differs).
    const tooLarge = pduSizeProblem(Buffer.byteLength(JSON.stringify(pdu), 'utf8'));
    if (tooLarge) throw new MatrixError('M_TOO_LARGE', `The ${tooLarge}`, 413);

    const authState: StateMap = new Map(authEvents.map((e) => [stateMapKey(e.type, e.state_key ?? ''), e]));
    // v12: the room id implies the create event, which the rules need although auth_events omits it.
    const verdict = checkAuth(pdu, withImpliedCreate(authState, this.state.get(CREATE_KEY), version), version);
    if (!verdict.allowed) throw new MatrixError('M_FORBIDDEN', verdict.reason);

    const isState = draft.stateKey !== undefined;
    const key = isState ? stateMapKey(draft.type, draft.stateKey!) : undefined;
    const replaced = key ? this.state.get(key) : undefined;
    const stateBefore = this.currentGroup;
    let stateAfter = this.currentGroup;
    if (key) {
      await this.willWrite();
      stateAfter = await this.deps.stateStore.createGroup(this.trx, this.roomId, this.currentGroup, new Map([[key, eventId]]));
      this.result.createdGroups.push(stateAfter);
    }
    const streamOrdering = this.stream.next();
    this.pendingInserts.push({
      streamOrdering,
      eventId,
      pdu,
      stateBefore: this.currentGroup,
      stateAfter,
      ...(meta.senderDevice !== undefined ? { senderDevice: meta.senderDevice } : {}),
      ...(meta.txnId !== undefined ? { txnId: meta.txnId } : {}),
      ...(replaced ? { replacesState: this.idOf(replaced) } : {}),
    });
    this.extremities = [{ eventId, depth }, ...this.extremities.filter((e) => !prev.some((p) => p.eventId === e.eventId))];
    this.deps.lastKnownHashes.set(eventId, pdu.hashes);

    if (key) {
      const membership = draft.type === 'm.room.member' ? String(draft.content.membership) : null;
      await setCurrentState(this.trx, this.roomId, draft.type, draft.stateKey!, eventId, membership, streamOrdering);
      await setCurrentStateGroup(this.trx, this.roomId, stateAfter!);
      if (!this.ownsState) {
        this.stateMap = new Map(this.stateMap);
        this.stateById = new Map(this.stateById);
        this.ownsState = true;
      }
      this.setState(this.stateMap, key, pdu);
      this.setState(this.stateById, eventId, pdu);
      if (replaced) this.setState(this.stateById, this.idOf(replaced), undefined);
      this.currentGroup = stateAfter;
    }
    const redacts = redactsOf(pdu, version);
    if (draft.type === 'm.room.redaction' && redacts) {
      await this.willWrite();
      await this.flushInserts();
      await markRedacted(this.trx, eventId, redacts);
      this.result.redactedTargets.push(redacts);
    }

    const stored: StoredEvent = {
      eventId,
      streamOrdering,
      depth,
      pdu,
      stateBefore,
      stateAfter,
      redactedBy: null,
      senderDevice: meta.senderDevice ?? null,
      txnId: meta.txnId ?? null,
      replacesState: replaced ? this.idOf(replaced) : null,
      rejected: false,
      outlier: false,
    };
    this.result.events.push(stored);
    if (draft.type === 'm.room.member' && draft.stateKey) this.result.notifyUsers.add(draft.stateKey);
    return stored;
  }

  /**
   * Completes the write once all events are appended: the forward extremities are stored once for the
   * whole batch, and everyone joined or invited is woken.
   */
  async finish(): Promise<WriteResult> {
    await this.flushInserts();
    const before = new Set(this.initialExtremities);
    const after = new Set(this.extremities.map((e) => e.eventId));
    const removed = [...before].filter((id) => !after.has(id));
    const added = [...after].filter((id) => !before.has(id));
    await updateForwardExtremities(this.trx, this.roomId, removed, added);
    this.initialExtremities = [...after];
    for (const ev of this.state.values()) {
      if (ev.type === 'm.room.member' && (ev.content.membership === 'join' || ev.content.membership === 'invite')) {
        this.result.notifyUsers.add(ev.state_key!);
      }
    }
    return this.result;
  }

  idOf(pdu: Pdu): string {
    return this.deps.idOf(pdu, this.version);
  }

  /** The forward extremities now (for building templates other servers sign). */
  get forwardExtremities(): ReadonlyArray<{ eventId: string; depth: number }> {
    return this.extremities;
  }

  /** Stores an event another server built, outside the timeline (auth chains, state from a join). */
  async storeOutlier(pdu: Pdu, eventId: string): Promise<void> {
    if (await this.deps.eventStore.get(this.trx, eventId)) return;
    // v12: the create event implied by the room id counts as an auth event.
    const authIds = impliedAuthEventIds(pdu, this.version);
    const authEvents = [...(await this.deps.eventStore.getMany(this.trx, authIds)).values()].map((e) => e.pdu);
    const reason = authEvents.length === authIds.length ? checkAgainstAuthEvents(pdu, authEvents, this.version) : undefined;
    await this.willWrite();
    await this.flushInserts();
    await insertEvents(this.trx, [
      { streamOrdering: this.stream.next(), eventId, pdu, stateBefore: null, stateAfter: null, outlier: true, ...(reason ? { rejectedReason: reason } : {}) },
    ]);
    this.flushedIds.push(eventId);
    this.deps.lastKnownHashes.set(eventId, pdu.hashes);
  }

  /**
   * Accepts an event another server built, whose format, signatures and hashes the federation pipeline
   * checked: auth against its auth events and the state before it, soft-fail against current state,
   * then the same persistence as local events (spec: "Checks performed on receipt of a PDU").
   */
  async acceptRemote(
    pdu: Pdu,
    eventId: string,
    stateBeforeIds?: ReadonlyMap<string, string>,
    opts: { supersedesHead?: boolean; missingPrevStates?: ReadonlyMap<string, ReadonlyMap<string, string>> } = {},
  ): Promise<{ outcome: RemoteOutcome; reason?: string }> {
    await this.willWrite();
    const existing = await this.deps.eventStore.get(this.trx, eventId);
    if (existing && !existing.outlier) return { outcome: 'duplicate' };
    if (existing) {
      // An outlier (fetched for an auth chain) now arrives in the timeline: it is stored afresh at a new
      // stream position, with state, so clients see it.
      await this.flushInserts();
      await deleteEventRow(this.trx, eventId);
      this.deps.eventStore.invalidate(eventId);
    }
    const { version } = this;
    // v12: the create event implied by the room id counts as an auth event (it is never in auth_events).
    const authIds = impliedAuthEventIds(pdu, version);
    const authEvents = await this.deps.eventStore.getMany(this.trx, authIds);
    const before = stateBeforeIds
      ? { ids: new Map(stateBeforeIds), group: null as number | null }
      : await this.stateBeforeFromPrevs(pdu, opts.missingPrevStates);
    if (!before) return this.reject(pdu, eventId, 'missing prev events');
    let beforeGroup = before.group;
    if (beforeGroup === null) {
      beforeGroup = await this.deps.stateStore.createGroup(this.trx, this.roomId, null, before.ids);
      this.result.createdGroups.push(beforeGroup);
    }
    // A rejected event keeps the state before it as its state after: later events may name it as a prev event.
    if (authEvents.size !== authIds.length) return this.reject(pdu, eventId, 'missing auth events', beforeGroup);
    const authReason = checkAgainstAuthEvents(pdu, authIds.map((id) => authEvents.get(id)!.pdu), version);
    if (authReason) return this.reject(pdu, eventId, authReason, beforeGroup);
    const beforeState = await this.pdusFor(before.ids);
    const stateReason = checkAgainstState(pdu, beforeState, version);
    if (stateReason) return this.reject(pdu, eventId, stateReason, beforeGroup);
    const redactsId = pdu.type === 'm.room.redaction' ? redactsOf(pdu, version) : undefined;
    const target = redactsId ? await this.deps.eventStore.get(this.trx, redactsId) : undefined;
    // A redaction naming an event of another room is rejected (as Synapse): it would otherwise erase it.
    if (target && roomIdOfEvent(target.pdu, target.eventId) !== this.roomId) return this.reject(pdu, eventId, 'redacts an event of another room', beforeGroup);
    // A rejoin's state comes from a resident server and is newer than ours: our stale head cannot soft-fail it.
    const softFail = this.stateMap.size > 0 && !opts.supersedesHead ? checkAgainstState(pdu, this.stateMap, version) : undefined;

    const key = typeof pdu.state_key === 'string' ? stateMapKey(pdu.type, pdu.state_key) : undefined;
    let afterGroup = beforeGroup;
    if (key) {
      afterGroup = await this.deps.stateStore.createGroup(this.trx, this.roomId, beforeGroup, new Map([[key, eventId]]));
      this.result.createdGroups.push(afterGroup);
    }
    const streamOrdering = this.stream.next();
    const replaced = key ? before.ids.get(key) : undefined;
    this.pendingInserts.push({
      streamOrdering,
      eventId,
      pdu,
      stateBefore: beforeGroup,
      stateAfter: afterGroup,
      ...(replaced ? { replacesState: replaced } : {}),
      ...(softFail ? { rejectedReason: `soft_failed: ${softFail}` } : {}),
    });
    this.deps.lastKnownHashes.set(eventId, pdu.hashes);
    // A soft-failed event is kept for the DAG but never reaches clients, current state or extremities.
    if (softFail) return { outcome: 'soft_failed', reason: softFail };

    const prevIds = new Set(prevEventIds(pdu));
    // A rejoin replaces the head: the resident's state already covers every event we had before leaving.
    const kept = opts.supersedesHead ? [] : this.extremities.filter((e) => !prevIds.has(e.eventId));
    this.extremities = [{ eventId, depth: pdu.depth }, ...kept];
    await this.recomputeCurrentState(eventId, afterGroup);
    const stored: StoredEvent = {
      eventId,
      streamOrdering,
      depth: pdu.depth,
      pdu,
      stateBefore: beforeGroup,
      stateAfter: afterGroup,
      redactedBy: null,
      senderDevice: null,
      txnId: null,
      replacesState: replaced ?? null,
      rejected: false,
      outlier: false,
    };
    this.result.events.push(stored);
    if (pdu.type === 'm.room.member' && pdu.state_key) this.result.notifyUsers.add(pdu.state_key);
    // Spec (room versions 3+, "Redactions"): a redaction by someone below the redact level applies only to
    // events of the sender's own server; the check waits until the target is known.
    const applies =
      !target || serverNameOf(target.pdu.sender) === serverNameOf(pdu.sender) || userPowerLevel(beforeState, pdu.sender, version) >= powerLevelFor(beforeState, 'redact', version);
    if (redactsId && applies) {
      await this.flushInserts();
      await markRedacted(this.trx, eventId, redactsId);
      this.result.redactedTargets.push(redactsId);
    }
    return { outcome: 'accepted' };
  }

  private async reject(pdu: Pdu, eventId: string, reason: string, stateGroup: number | null = null): Promise<{ outcome: RemoteOutcome; reason: string }> {
    if (!(await this.deps.eventStore.get(this.trx, eventId))) {
      this.pendingInserts.push({ streamOrdering: this.stream.next(), eventId, pdu, stateBefore: stateGroup, stateAfter: stateGroup, rejectedReason: reason });
    }
    return { outcome: 'rejected', reason };
  }

  /** The state before an event from the state after each of its prev events, resolved when they differ. */
  /** `missingPrevStates`: the state after prev events not in our timeline, as another server told it. */
  private async stateBeforeFromPrevs(
    pdu: Pdu,
    missingPrevStates?: ReadonlyMap<string, ReadonlyMap<string, string>>,
  ): Promise<{ ids: Map<string, string>; group: number | null } | undefined> {
    const prevIds = prevEventIds(pdu);
    const prevs = await this.deps.eventStore.getMany(this.trx, prevIds);
    const groups: number[] = [];
    const remote: Array<ReadonlyMap<string, string>> = [];
    for (const id of prevIds) {
      const prev = prevs.get(id);
      // A prev event of another room gives no state here (it would carry that room's state across).
      if (prev && !prev.outlier && prev.stateAfter !== null && roomIdOfEvent(prev.pdu, prev.eventId) === this.roomId) groups.push(prev.stateAfter);
      else if (missingPrevStates?.has(id)) remote.push(missingPrevStates.get(id)!);
      else return undefined;
    }
    const distinct = [...new Set(groups)];
    if (distinct.length === 1 && !remote.length) return { ids: new Map(await this.deps.stateStore.stateIds(this.trx, distinct[0]!)), group: distinct[0]! };
    const sets = [...(await Promise.all(distinct.map((g) => this.deps.stateStore.stateIds(this.trx, g)))), ...remote];
    if (sets.length === 1) return { ids: new Map(sets[0]!), group: null };
    return { ids: await this.resolve(sets), group: null };
  }

  private async resolve(sets: ReadonlyArray<ReadonlyMap<string, string>>): Promise<Map<string, string>> {
    const events = await loadStateResolutionEvents(
      sets,
      async (ids) => new Map([...(await this.deps.eventStore.getMany(this.trx, ids))].map(([id, e]) => [id, e.pdu])),
      this.version,
    );
    return resolveState(sets, events, this.version);
  }

  private async pdusFor(ids: ReadonlyMap<string, string>): Promise<Map<string, Pdu>> {
    const events = await this.deps.eventStore.getMany(this.trx, [...ids.values()]);
    const out = new Map<string, Pdu>();
    for (const [key, id] of ids) {
      const ev = events.get(id);
      if (ev) out.set(key, ev.pdu);
    }
    return out;
  }

  /** Current state follows the forward extremities: the newest event's state, or their resolution. */
  private async recomputeCurrentState(newestId: string, newestGroup: number): Promise<void> {
    // The new event must be readable below (it may be part of the state).
    await this.flushInserts();
    let ids: Map<string, string>;
    let group = newestGroup;
    if (this.extremities.length === 1 && this.extremities[0]!.eventId === newestId) {
      ids = new Map(await this.deps.stateStore.stateIds(this.trx, newestGroup));
    } else {
      const exts = await this.deps.eventStore.getMany(this.trx, this.extremities.map((e) => e.eventId));
      const groups = [...new Set([...exts.values()].map((e) => e.stateAfter).filter((g): g is number => g !== null))];
      groups.push(newestGroup);
      const distinct = [...new Set(groups)];
      if (distinct.length === 1) ids = new Map(await this.deps.stateStore.stateIds(this.trx, distinct[0]!));
      else {
        ids = await this.resolve(await Promise.all(distinct.map((g) => this.deps.stateStore.stateIds(this.trx, g))));
        group = await this.deps.stateStore.createGroup(this.trx, this.roomId, null, ids);
        this.result.createdGroups.push(group);
      }
    }
    const pdus = await this.pdusFor(ids);
    const oldIds = new Map([...this.stateMap].map(([k, p]) => [k, this.idOf(p)]));
    const stream = this.stream.current();
    for (const [k, id] of ids) {
      if (oldIds.get(k) === id) continue;
      const pdu = pdus.get(k);
      if (!pdu) continue;
      const membership = pdu.type === 'm.room.member' ? String(pdu.content.membership) : null;
      await setCurrentState(this.trx, this.roomId, pdu.type, pdu.state_key ?? '', id, membership, stream);
      if (pdu.type === 'm.room.member' && pdu.state_key) this.result.notifyUsers.add(pdu.state_key);
    }
    for (const k of oldIds.keys()) {
      if (!ids.has(k)) {
        const [type, stateKey] = parseStateMapKey(k);
        await deleteCurrentState(this.trx, this.roomId, type, stateKey);
      }
    }
    await setCurrentStateGroup(this.trx, this.roomId, group);
    this.stateMap = pdus;
    this.stateById = new Map([...pdus.values()].map((p) => [this.idOf(p), p]));
    this.ownsState = true;
    this.currentGroup = group;
  }

  private async flushInserts(): Promise<void> {
    if (!this.pendingInserts.length) return;
    await this.willWrite();
    await insertEvents(this.trx, this.pendingInserts);
    for (const row of this.pendingInserts) this.flushedIds.push(row.eventId);
    this.pendingInserts = [];
  }
}

export interface RoomWriterDeps {
  serverName: string;
  signingKey: SigningKey;
  clock: Clock;
  eventStore: EventStore;
  stateStore: StateStore;
  /** Content hashes of recent events, for v1/v2 `[id, hashes]` references. */
  lastKnownHashes: LruCache<string, Pdu['hashes']>;
  idOf(pdu: Pdu, version: RoomVersion): string;
}

/** What the writer needs to know about a room to append to it. Treated as immutable once cached. */
export interface RoomHead {
  version: RoomVersion;
  group: number | null;
  extremities: Array<{ eventId: string; depth: number }>;
  state: StateMap;
  stateById: Map<string, Pdu>;
}

export class RoomWriter {
  // With SQLite this process is the only writer, so the head of each room can be kept in memory after
  // commit instead of being re-read for every event. With PostgreSQL other processes may write too.
  private readonly heads = new LruCache<string, RoomHead>(2_000);

  constructor(
    private readonly deps: RoomWriterDeps,
    private readonly trustCachedHeads: boolean,
  ) {}

  /** Called after the transaction that used `ctx` committed. */
  committed(ctx: RoomWriteContext): void {
    if (this.trustCachedHeads) this.heads.set(ctx.roomId, ctx.head());
  }

  /** Called when a transaction on the room failed: the cached head may be ahead of the database. */
  abandoned(roomId: string): void {
    this.heads.delete(roomId);
  }

  async open(trx: Knex.Transaction, stream: StreamAllocator, roomId: string): Promise<RoomWriteContext> {
    const cached = this.trustCachedHeads ? this.heads.get(roomId) : undefined;
    if (cached) {
      return new RoomWriteContext(trx, this.deps, stream, roomId, cached.version, cached.state, cached.group, cached.extremities, cached.stateById);
    }
    const room = await getRoom(trx, roomId);
    if (!room) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    const version = getRoomVersion(room.roomVersion);
    if (!version) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', `Unsupported room version ${room.roomVersion}`);
    const state = room.currentStateGroup === null ? new Map() : await this.deps.stateStore.stateEvents(trx, room.currentStateGroup);
    const stateById = new Map<string, Pdu>();
    for (const pdu of state.values()) stateById.set(this.deps.idOf(pdu, version), pdu);
    const extremities = await getForwardExtremities(trx, roomId);
    for (const e of extremities) {
      if (!stateById.has(e.eventId) && !this.deps.lastKnownHashes.get(e.eventId)) {
        const ev = await this.deps.eventStore.get(trx, e.eventId);
        if (ev) this.deps.lastKnownHashes.set(e.eventId, ev.pdu.hashes);
      }
    }
    return new RoomWriteContext(trx, this.deps, stream, roomId, version, state, room.currentStateGroup, extremities, stateById);
  }

  /**
   * v12 (`roomIdFromCreateEvent`): the id of the room whose create event `draft` is, built exactly as
   * `append` will build it (`draft.originServerTs` must be set so both builds agree).
   */
  roomIdFromCreateDraft(draft: EventDraft, version: RoomVersion): string {
    if (draft.type !== 'm.room.create' || draft.originServerTs === undefined) throw new Error('a create event draft with originServerTs is needed');
    const { eventId } = buildPdu(localSkeleton(draft, '', [], [], 1, draft.originServerTs), version, {
      serverName: this.deps.serverName,
      key: this.deps.signingKey,
    });
    return roomIdFromCreateEventId(eventId);
  }

  async create(trx: Knex.Transaction, stream: StreamAllocator, roomId: string, version: RoomVersion, creator: string, isPublic: boolean): Promise<RoomWriteContext> {
    await insertRoom(trx, { roomId, roomVersion: version.id, creator, isPublic, createdTs: this.deps.clock.now() });
    return new RoomWriteContext(trx, this.deps, stream, roomId, version, new Map(), null, [], new Map());
  }
}

/**
 * Hands out timeline stream positions inside one stream-write transaction. All event writes hold the
 * stream-write lock, so reading the maximum once and counting up is safe on every dialect.
 */
export class StreamAllocator {
  private constructor(private last: number) {}

  static async start(trx: Knex.Transaction): Promise<StreamAllocator> {
    return new StreamAllocator(await maxStreamOrdering(trx));
  }

  next(): number {
    this.last += 1;
    return this.last;
  }

  current(): number {
    return this.last;
  }

  /** Gives back the positions taken after `position` (by a job that was rolled back). */
  rewind(position: number): void {
    this.last = position;
  }
}
