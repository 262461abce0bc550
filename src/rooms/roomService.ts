import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { canonicalJson } from '../crypto/canonicalJson.js';
import { MatrixError, forbidden, notFound } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import type { Db } from '../storage/database.js';
import { deleteEventRow, eventIdsForTransactions, insertEvents, transactionKeyString, type StoredEvent, type TransactionKey } from '../storage/repositories/events.js';
import { getProfile } from '../storage/repositories/profiles.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import * as stateRepo from '../storage/repositories/state.js';
import { stateMapKey, type Pdu } from '../types/pdu.js';
import { LruCache } from '../util/lru.js';
import { powerLevelFor, userPowerLevel } from './authRules.js';
import { eventIdOf, roomIdFromCreateEventId, roomIdOfEvent, serverNameOf, signPdu } from './eventFormat.js';
import { topologicalByDepth, type RemoteOutcome } from './remoteAppend.js';
import { buildMembershipTemplate, stateAndAuthChain } from './remoteRooms.js';
import { assertValidLocalEvent, canonicalJsonProblem, contentRules, isStorableString, type LocalEventDraft } from './eventLimits.js';
import { EventStore } from './eventStore.js';
import { clientJoinExtras } from './joinContent.js';
import { encryptedPresets, initialRoomEvents, type CreateRoomRequest } from './roomCreation.js';
import { RoomReader } from './roomReader.js';
import { getRoomVersion, type RoomVersion } from './roomVersions.js';
import { RoomWriter, StreamAllocator, type AppendMeta, type EventDraft, type RolledBack, type RoomWriteContext, type WriteResult } from './roomWriter.js';
import { StateStore } from './stateStore.js';
import { roomBlock } from '../storage/repositories/adminRooms.js';
import { authorisingServers, isRestrictedRoom, localJoinAuthoriser, unableToGrant } from './restrictedJoin.js';

function canonicalEqual(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

interface WriteJob {
  roomId: string;
  /** For sends with a transaction id: an event already sent under it answers instead of `fn`. */
  txn?: TransactionKey;
  fn: (ctx: RoomWriteContext, trx: Knex.Transaction) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** The error of the job's last attempt, for the answer once the batch gives up on it. */
  lastError?: unknown;
}

const MAX_BATCH = 256;
const JOB_SAVEPOINT = 'skjol_write_job';

/** Thrown to roll back a batch whose transaction a job broke; the batch then runs again without it. */
class BatchBroken extends Error {}

/** Wraps a room write in its write transaction (a client txnId recorded with the event); yields the event id. */
export type EventOnce = (trx: Knex.Transaction, work: () => Promise<string>) => Promise<string>;

export interface Actor {
  userId: string;
  deviceId?: string | undefined;
  /** A guest account (Client-Server API, "Guest access"): may only join rooms whose guest_access is can_join. */
  isGuest?: boolean | undefined;
  /** The application service acting (its as_token authenticated the request). */
  appserviceId?: string | undefined;
}

/** Joins through a resident server (make_join / send_join); `via` lists servers to try first. */
export type RemoteJoinFn = (actor: Actor, roomIdOrAlias: string, content: Record<string, unknown>, via?: readonly string[]) => Promise<string>;

const ROOM_ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

function randomRoomLocalpart(): string {
  const bytes = randomBytes(18);
  return Array.from(bytes, (b) => ROOM_ID_CHARS[b % ROOM_ID_CHARS.length]).join('');
}

/** Rooms: creation, sending and membership through one append path, plus reads through RoomReader. */
export class RoomService {
  readonly events = new EventStore();
  readonly state: StateStore;
  readonly reader: RoomReader;
  private readonly writer: RoomWriter;
  private readonly versions = new LruCache<string, RoomVersion>(10_000);
  private readonly afterCommitHooks: Array<(result: WriteResult) => void> = [];
  private readonly outOfBandHooks: Array<(event: StoredEvent) => void> = [];
  private readonly pendingSends = new Map<string, Promise<string>>();
  private readonly writeQueue: WriteJob[] = [];
  private flushing = false;

  constructor(private readonly deps: ServiceDeps) {
    this.state = new StateStore(this.events);
    const lastKnownHashes = new LruCache<string, Pdu['hashes']>(10_000);
    this.writer = new RoomWriter({
      serverName: deps.serverName,
      signingKey: deps.signingKey,
      clock: deps.clock,
      eventStore: this.events,
      stateStore: this.state,
      lastKnownHashes,
      idOf: (pdu, version) => eventIdOf(pdu, version),
    }, deps.db.dialect === 'sqlite');
    this.reader = new RoomReader({ db: deps.db, events: this.events, state: this.state, clock: deps.clock, roomVersion: (db, id) => this.roomVersion(db, id) });
  }

  private remoteJoiner: RemoteJoinFn | undefined;

  /**
   * Application services (set by homeserver.ts): `isExclusive` refuses a local alias reserved by a service
   * the creator does not belong to (400 M_EXCLUSIVE); `query` asks the services claiming an unknown local
   * alias to create it (Application Service API, "Querying") — true when one did.
   */
  aliasHooks:
    | { isExclusive(alias: string, userId: string): boolean; query(alias: string): Promise<boolean>; inNamespaceOf(alias: string, appserviceId: string): boolean }
    | undefined;

  /** Application services: asks the service claiming an unknown local user to create it (set by homeserver.ts). */
  queryUser: ((userId: string) => Promise<boolean>) | undefined;

  private async findLocalAlias(alias: string) {
    const found = await roomsRepo.getAlias(this.deps.db.knex, alias);
    if (found || !this.aliasHooks || serverNameOf(alias) !== this.deps.serverName) return found;
    return (await this.aliasHooks.query(alias)) ? roomsRepo.getAlias(this.deps.db.knex, alias) : undefined;
  }

  private checkAliasExclusive(alias: string, userId: string): void {
    if (this.aliasHooks?.isExclusive(alias, userId)) {
      throw new MatrixError('M_EXCLUSIVE', 'This room alias is reserved by an application service', 400);
    }
  }

  /** Federation joins rooms that live on other servers (make_join / send_join). */
  setRemoteJoiner(joiner: RemoteJoinFn): void {
    this.remoteJoiner = joiner;
  }

  private remoteInviter: ((actor: Actor, roomId: string, target: string, content: Record<string, unknown>) => Promise<void>) | undefined;
  private remoteLeaver: ((actor: Actor, roomId: string, reason: string | undefined) => Promise<void>) | undefined;
  /** Federation resolves aliases of other servers (GET /query/directory at the alias's server). */
  remoteAliasResolver: ((alias: string) => Promise<{ roomId: string; servers: string[] }>) | undefined;
  /** Knocks on rooms this server is not in (make_knock / send_knock); rooms/knock.ts calls it. */
  remoteKnocker: ((actor: Actor, roomIdOrAlias: string, reason: string | undefined, via: readonly string[]) => Promise<string>) | undefined;

  /** Federation invites users of other servers (PUT /v2/invite, their server signs the event too). */
  setRemoteInviter(fn: (actor: Actor, roomId: string, target: string, content: Record<string, unknown>) => Promise<void>): void {
    this.remoteInviter = fn;
  }

  /** Federation leaves rooms known here only through an invite or a knock (make_leave / send_leave). */
  setRemoteLeaver(fn: (actor: Actor, roomId: string, reason: string | undefined) => Promise<void>): void {
    this.remoteLeaver = fn;
  }

  /**
   * A membership of a local user in a room this server does not have, or has left (an invite received over
   * federation, a knock or the rejection of either): stored as an outlier with the user's current membership
   * pointing at it, so /sync shows it (from `unsigned.invite_room_state` / `knock_room_state`).
   */
  async storeOutOfBandMembership(pdu: Pdu, eventId: string): Promise<void> {
    const userId = pdu.state_key;
    if (pdu.type !== 'm.room.member' || typeof userId !== 'string' || typeof pdu.content.membership !== 'string') {
      throw new MatrixError('M_BAD_JSON', 'Not a membership event');
    }
    await this.deps.db.write(async (trx) => {
      // A room a local user is in gets its events through the room; one we left only through its residents.
      if ((await roomsRepo.getRoom(trx, pdu.room_id)) && (await this.hasLocalMember(trx, pdu.room_id))) {
        throw new MatrixError('M_UNKNOWN', 'Room is known here; its events go through the room', 409);
      }
      const stream = await StreamAllocator.start(trx);
      if (await this.events.get(trx, eventId)) await deleteEventRow(trx, eventId);
      const streamOrdering = stream.next();
      await insertEvents(trx, [{ streamOrdering, eventId, pdu, stateBefore: null, stateAfter: null, outlier: true }]);
      await stateRepo.setCurrentState(trx, pdu.room_id, 'm.room.member', userId, eventId, String(pdu.content.membership), streamOrdering);
    });
    this.events.invalidate(eventId);
    this.deps.notifier.notifyUsers([userId]);
    const stored = await this.events.get(this.deps.db.knex, eventId);
    if (!stored) return;
    for (const hook of this.outOfBandHooks) {
      try {
        hook(stored);
      } catch (err) {
        this.deps.logger.error({ err }, 'out-of-band membership hook failed');
      }
    }
  }

  /** Subscribers run after a membership of a room not known here was stored (an invite's push, as Synapse). */
  onOutOfBandMembership(hook: (event: StoredEvent) => void): void {
    this.outOfBandHooks.push(hook);
  }

  /** Whether a user of this server is joined to the room (in our copy of its current state). */
  async hasLocalMember(db: Knex, roomId: string): Promise<boolean> {
    return (await stateRepo.roomMembers(db, roomId, ['join'])).some((u) => serverNameOf(u) === this.deps.serverName);
  }

  // ---------------------------------------------------------------------------------------------
  // Events from other servers (the federation pipeline checks format, signatures and hashes first)

  async acceptRemoteEvents(
    roomId: string,
    events: Array<{ pdu: Pdu; eventId: string; missingPrevStates?: ReadonlyMap<string, ReadonlyMap<string, string>> }>,
  ): Promise<Array<{ eventId: string; outcome: RemoteOutcome; reason?: string }>> {
    return this.write(roomId, async (ctx) => {
      const out: Array<{ eventId: string; outcome: RemoteOutcome; reason?: string }> = [];
      for (const { pdu, eventId, missingPrevStates } of topologicalByDepth(events)) {
        out.push({ eventId, ...(await ctx.acceptRemote(pdu, eventId, undefined, missingPrevStates ? { missingPrevStates } : {})) });
      }
      return out;
    });
  }

  async storeOutliers(roomId: string, events: Array<{ pdu: Pdu; eventId: string }>): Promise<void> {
    await this.write(roomId, async (ctx) => {
      for (const { pdu, eventId } of topologicalByDepth(events)) await ctx.storeOutlier(pdu, eventId);
    });
  }

  /** make_join / make_leave / make_knock: an unsigned membership event for a user of another server. */
  async joinTemplate(roomId: string, userId: string, membership: 'join' | 'leave' | 'knock', content: Record<string, unknown> = {}): Promise<{ room_version: string; event: Record<string, unknown> }> {
    if (!(await roomsRepo.getRoom(this.deps.db.knex, roomId))) throw notFound('Unknown room');
    return this.write(roomId, async (ctx, trx) => {
      let full: Record<string, unknown> = content;
      const current = ctx.membershipOf(userId);
      if (membership === 'join' && current !== 'join' && current !== 'invite' && isRestrictedRoom(ctx.state, ctx.version)) {
        // Spec: Server-Server API "Restricted rooms": the resident names one of its users as authoriser.
        const authoriser = await localJoinAuthoriser(trx, ctx.state, ctx.version, userId, this.deps.serverName, true);
        if (!authoriser) throw unableToGrant();
        full = { ...content, join_authorised_via_users_server: authoriser };
      }
      return {
        room_version: ctx.version.id,
        event: buildMembershipTemplate(ctx, this.deps.serverName, userId, membership, full, this.deps.clock.now()),
      };
    });
  }

  stateAndAuthChain(roomId: string, eventId: string): Promise<{ state: Pdu[]; authChain: Pdu[] }> {
    return stateAndAuthChain(this.deps.db.knex, this.events, this.state, roomId, eventId);
  }

  /** After send_join: the room as the resident server described it, with our join on top, in one transaction. */
  async importJoinedRoom(input: { roomId: string; roomVersion: string; state: Pdu[]; authChain: Pdu[]; joinEvent: Pdu; joinEventId: string }): Promise<void> {
    const version = getRoomVersion(input.roomVersion);
    if (!version) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', `Unsupported room version ${input.roomVersion}`);
    if (await roomsRepo.getRoom(this.deps.db.knex, input.roomId)) return this.importRejoin(input, version);
    let result: WriteResult | undefined;
    try {
      await this.deps.db.write(async (trx) => {
        if (await roomsRepo.getRoom(trx, input.roomId)) throw new MatrixError('M_UNKNOWN', 'Room already known here', 409);
        const ctx = await this.writer.create(trx, await StreamAllocator.start(trx), input.roomId, version, input.joinEvent.sender, false);
        const byId = new Map<string, Pdu>();
        for (const pdu of [...input.authChain, ...input.state]) byId.set(eventIdOf(pdu, version), pdu);
        for (const { pdu, eventId } of topologicalByDepth([...byId].map(([eventId, pdu]) => ({ eventId, pdu })))) await ctx.storeOutlier(pdu, eventId);
        const stateIds = new Map(input.state.map((p) => [stateMapKey(p.type, p.state_key ?? ''), eventIdOf(p, version)]));
        const accepted = await ctx.acceptRemote(input.joinEvent, input.joinEventId, stateIds);
        if (accepted.outcome !== 'accepted') throw new MatrixError('M_FORBIDDEN', `Join refused: ${accepted.reason ?? accepted.outcome}`);
        result = await ctx.finish();
        this.writer.committed(ctx);
      });
    } catch (err) {
      if (result) this.state.forget(result.createdGroups);
      this.writer.abandoned(input.roomId);
      throw err;
    }
    this.versions.set(input.roomId, version);
    this.publish(result!);
  }

  /**
   * A join of a room this server already has events for: the resident's state and auth chain join the
   * room's events; after the server had left, the join, placed on that state, becomes the room's head.
   */
  private async importRejoin(input: { roomId: string; state: Pdu[]; authChain: Pdu[]; joinEvent: Pdu; joinEventId: string }, version: RoomVersion): Promise<void> {
    const known = await this.roomVersion(this.deps.db.knex, input.roomId);
    if (known.id !== version.id) throw new MatrixError('M_UNKNOWN', `The resident server answered room version ${version.id}, not ${known.id}`, 502);
    // Still in the room (a restricted join another server authorised): our head is current and stays.
    const own = this.deps.serverName;
    const supersedesHead = !(await stateRepo.roomMembers(this.deps.db.knex, input.roomId, ['join'])).some((u) => serverNameOf(u) === own);
    await this.write(input.roomId, async (ctx) => {
      const byId = new Map<string, Pdu>();
      for (const pdu of [...input.authChain, ...input.state]) byId.set(eventIdOf(pdu, version), pdu);
      for (const { pdu, eventId } of topologicalByDepth([...byId].map(([eventId, pdu]) => ({ eventId, pdu })))) await ctx.storeOutlier(pdu, eventId);
      const stateIds = new Map(input.state.map((p) => [stateMapKey(p.type, p.state_key ?? ''), eventIdOf(p, version)]));
      const accepted = await ctx.acceptRemote(input.joinEvent, input.joinEventId, stateIds, { supersedesHead });
      if (accepted.outcome !== 'accepted') throw new MatrixError('M_FORBIDDEN', `Join refused: ${accepted.reason ?? accepted.outcome}`);
    });
  }

  /** Adds this server's signature to an event (e.g. the resident server's signature on a restricted join). */
  signAsServer(pdu: Pdu, version: RoomVersion): Pdu {
    return signPdu(pdu, this.deps.serverName, this.deps.signingKey, version);
  }

  /** Subscribers run after a room write committed (push rules, appservices, federation …). */
  onCommitted(hook: (result: WriteResult) => void): void {
    this.afterCommitHooks.push(hook);
  }

  async roomVersion(db: Db, roomId: string): Promise<RoomVersion> {
    const cached = this.versions.get(roomId);
    if (cached) return cached;
    const room = await roomsRepo.getRoom(db, roomId);
    if (!room) throw notFound('Unknown room');
    const version = getRoomVersion(room.roomVersion);
    if (!version) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', `Unsupported room version ${room.roomVersion}`);
    this.versions.set(roomId, version);
    return version;
  }

  /**
   * Runs `fn` against the room's current head inside a stream-write transaction, then publishes what it
   * wrote. Writes that arrive while a transaction is running are committed together in the next one (group
   * commit); a job that fails, whatever the error, leaves no trace and does not affect the others.
   * `fn` writes through `ctx`; one that writes through `trx` itself must first await `ctx.willWrite()`.
   */
  write<T>(roomId: string, fn: (ctx: RoomWriteContext, trx: Knex.Transaction) => Promise<T>, txn?: TransactionKey): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.writeQueue.push({ roomId, fn, resolve: resolve as (v: unknown) => void, reject, ...(txn ? { txn } : {}) });
      void this.flushWrites();
    });
  }

  private async flushWrites(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.writeQueue.length) await this.runBatch(this.writeQueue.splice(0, MAX_BATCH));
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Runs a batch so that one job cannot fail the others: a job that fails is rolled back alone (its
   * savepoint, or its in-memory changes when it wrote nothing). When the transaction itself breaks, the
   * batch runs again without the job that broke it, then job by job, so only the guilty one fails.
   */
  private async runBatch(batch: WriteJob[]): Promise<void> {
    const first = await this.tryBatch(batch);
    if (first.ok) return;
    if (batch.length === 1) return this.failJob(batch[0]!, first.error);
    if (first.culprit) {
      const second = await this.tryBatch(batch.filter((job) => job !== first.culprit));
      // The culprit runs alone too: it may have been hurt by another job's error, not have caused it.
      if (second.ok) return this.runAlone([first.culprit]);
    }
    // Still failing: each job in its own transaction, so each answer depends on that job only.
    await this.runAlone(batch);
  }

  private async runAlone(jobs: readonly WriteJob[]): Promise<void> {
    for (const job of jobs) {
      const outcome = await this.tryBatch([job]);
      if (!outcome.ok) this.failJob(job, outcome.error);
    }
  }

  /** An unexpected error answers 500 to its own sender only, logged once here. */
  private failJob(job: WriteJob, error: unknown): void {
    if (!(error instanceof MatrixError)) this.deps.logger.error({ roomId: job.roomId, err: error }, 'room write failed');
    job.reject(error);
  }

  /**
   * One transaction for `batch`. Settles every job and answers ok, or settles none and names the job whose
   * unexpected error broke the transaction (none when it broke outside a job, e.g. at commit).
   */
  private async tryBatch(batch: WriteJob[]): Promise<{ ok: true } | { ok: false; culprit?: WriteJob; error: unknown }> {
    const contexts = new Map<string, RoomWriteContext>();
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    let culprit: WriteJob | undefined;
    const forgotten: RolledBack[] = [];
    try {
      await this.deps.db.write(async (trx) => {
        const stream = await StreamAllocator.start(trx);
        const keys = batch.map((j) => j.txn).filter((k): k is TransactionKey => k !== undefined);
        const alreadySent = await eventIdsForTransactions(trx, keys);
        for (const job of batch) {
          const earlier = job.txn ? alreadySent.get(transactionKeyString(job.txn)) : undefined;
          if (earlier) {
            outcomes.push({ ok: true, value: earlier });
            continue;
          }
          const outcome = await this.runJob(job, trx, stream, contexts, forgotten);
          if (outcome === 'broken') {
            culprit = job;
            throw new BatchBroken();
          }
          outcomes.push(outcome);
          // A retry of this transaction later in the same batch finds this event.
          if (outcome.ok && job.txn) alreadySent.set(transactionKeyString(job.txn), String(outcome.value));
        }
        // The head cache moves inside the transaction, so the next one never opens a stale head.
        for (const ctx of contexts.values()) {
          await ctx.finish();
          this.writer.committed(ctx);
        }
      });
    } catch (err) {
      for (const ctx of contexts.values()) {
        this.state.forget(ctx.result.createdGroups);
        this.writer.abandoned(ctx.roomId);
        for (const id of [...ctx.writtenEventIds, ...ctx.result.events.map((e) => e.eventId)]) this.events.invalidate(id);
      }
      this.forgetRolledBack(forgotten);
      return culprit ? { ok: false, culprit, error: culprit.lastError } : { ok: false, error: err };
    }
    this.forgetRolledBack(forgotten);
    for (const ctx of contexts.values()) this.publish(ctx.result);
    batch.forEach((job, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) job.resolve(outcome.value);
      else this.failJob(job, outcome.error);
    });
    return { ok: true };
  }

  /**
   * Runs one job of a batch. A failure is undone on its own: in memory always, in the database through a
   * savepoint opened lazily before the job's first write (most sends write nothing until the batch ends).
   * 'broken' means the transaction can no longer be trusted (an unexpected error outside a savepoint).
   */
  private async runJob(
    job: WriteJob,
    trx: Knex.Transaction,
    stream: StreamAllocator,
    contexts: Map<string, RoomWriteContext>,
    forgotten: RolledBack[],
  ): Promise<{ ok: true; value: unknown } | { ok: false; error: unknown } | 'broken'> {
    let ctx = contexts.get(job.roomId);
    if (!ctx) {
      try {
        ctx = await this.writer.open(trx, stream, job.roomId);
      } catch (error) {
        job.lastError = error;
        return error instanceof MatrixError ? { ok: false, error } : 'broken';
      }
      contexts.set(job.roomId, ctx);
    }
    let savepoint = false;
    const position = stream.current();
    const checkpoint = ctx.checkpoint(async () => {
      await trx.raw(`SAVEPOINT ${JOB_SAVEPOINT}`);
      savepoint = true;
    });
    try {
      const value = await job.fn(ctx, trx);
      if (savepoint) await trx.raw(`RELEASE SAVEPOINT ${JOB_SAVEPOINT}`);
      ctx.release();
      return { ok: true, value };
    } catch (error) {
      job.lastError = error;
      if (savepoint) {
        try {
          await trx.raw(`ROLLBACK TO SAVEPOINT ${JOB_SAVEPOINT}`);
          await trx.raw(`RELEASE SAVEPOINT ${JOB_SAVEPOINT}`);
        } catch {
          return 'broken';
        }
      } else if (!(error instanceof MatrixError)) {
        // Perhaps a failed statement, which poisons a PostgreSQL transaction: only a fresh one is safe.
        return 'broken';
      }
      forgotten.push(ctx.rollback(checkpoint));
      stream.rewind(position);
      return { ok: false, error };
    }
  }

  private forgetRolledBack(rolledBack: readonly RolledBack[]): void {
    for (const { groups, eventIds } of rolledBack) {
      this.state.forget(groups);
      for (const id of eventIds) this.events.invalidate(id);
    }
  }

  private publish(result: WriteResult): void {
    for (const ev of result.events) this.events.remember(ev);
    for (const id of result.redactedTargets) this.events.invalidate(id);
    this.deps.notifier.notifyUsers(result.notifyUsers);
    this.deps.notifier.notifyRooms(new Set(result.events.map((e) => roomIdOfEvent(e.pdu, e.eventId)).filter((id): id is string => id !== undefined)));
    for (const hook of this.afterCommitHooks) {
      try {
        hook(result);
      } catch (err) {
        this.deps.logger.error({ err }, 'after-commit hook failed');
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Creation

  async createRoom(actor: Actor, req: CreateRoomRequest): Promise<{ roomId: string; alias?: string }> {
    const versionId = req.room_version ?? this.deps.config.default_room_version;
    const version = getRoomVersion(versionId);
    if (!version) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', `Room version ${versionId} is not supported`);
    const allInvitees = [...new Set(req.invite ?? [])];
    for (const u of allInvitees) {
      if (!/^@[^:]+:.+$/.test(u)) throw new MatrixError('M_INVALID_PARAM', `Invalid user id in invite: ${u}`);
    }
    // Users of other servers are invited once the room exists, through the one federation invite path.
    const isRemote = (u: string) => this.remoteInviter !== undefined && serverNameOf(u) !== this.deps.serverName;
    const invitees = allInvitees.filter((u) => !isRemote(u));
    const remoteInvitees = allInvitees.filter(isRemote);
    let alias: string | undefined;
    if (req.room_alias_name !== undefined) {
      if (!/^[^:\s#]+$/.test(req.room_alias_name)) throw new MatrixError('M_INVALID_PARAM', 'Invalid room_alias_name');
      alias = `#${req.room_alias_name}:${this.deps.serverName}`;
      this.checkAliasExclusive(alias, actor.userId);
      if (await roomsRepo.getAlias(this.deps.db.knex, alias)) throw new MatrixError('M_ROOM_IN_USE', 'Room alias already taken');
    }
    // As for /invite: a local invitee unknown here may be an application service's user, created on query.
    for (const invitee of invitees) {
      if (serverNameOf(invitee) === this.deps.serverName && !(await getProfile(this.deps.db.knex, invitee))) await this.queryUser?.(invitee);
    }
    const profile = (await getProfile(this.deps.db.knex, actor.userId)) ?? { displayname: null, avatar_url: null };
    const drafts = initialRoomEvents(req, {
      creator: actor.userId,
      version,
      profile,
      canonicalAlias: alias,
      encryptedPresets: encryptedPresets(this.deps.config.encryption_enabled_by_default_for_room_type),
    });
    // initial_state, creation_content, power_level_content_override …: refused before anything is written.
    for (const draft of drafts) assertValidLocalEvent(draft, version);
    const roomId = this.newRoomId(version, drafts[0]!);
    let result: WriteResult | undefined;
    try {
      await this.deps.db.write(async (trx) => {
        const ctx = await this.writer.create(trx, await StreamAllocator.start(trx), roomId, version, actor.userId, req.visibility === 'public');
        await this.appendCreateEvent(ctx, drafts[0]!);
        for (const draft of drafts.slice(1)) await ctx.append(draft);
        if (alias && !(await roomsRepo.insertAlias(trx, alias, roomId, actor.userId, this.deps.clock.now()))) {
          throw new MatrixError('M_ROOM_IN_USE', 'Room alias already taken');
        }
        for (const invitee of invitees) {
          const content: Record<string, unknown> = { membership: 'invite' };
          if (req.is_direct) content.is_direct = true;
          const target = await getProfile(trx, invitee);
          if (target?.displayname) content.displayname = target.displayname;
          if (target?.avatar_url) content.avatar_url = target.avatar_url;
          await ctx.append({ type: 'm.room.member', stateKey: invitee, content, sender: actor.userId });
        }
        result = await ctx.finish();
        this.writer.committed(ctx);
      });
    } catch (err) {
      if (result) this.state.forget(result.createdGroups);
      this.writer.abandoned(roomId);
      throw err;
    }
    this.versions.set(roomId, version);
    this.publish(result!);
    // As Synapse (handlers/room.py create_room): invites go out in turn after the room is created; a refused
    // one fails the request and stops the rest, and the room stays.
    for (const invitee of remoteInvitees) await this.invite(actor, roomId, invitee, undefined, req.is_direct);
    return alias ? { roomId, alias } : { roomId };
  }

  /**
   * The id of a new room. v12 (`roomIdFromCreateEvent`): `!` + the reference hash of its create event, whose
   * timestamp is fixed here so the append builds the same event; before: `!random:server`.
   */
  private newRoomId(version: RoomVersion, createEvent: EventDraft): string {
    if (!version.roomIdFromCreateEvent) return `!${randomRoomLocalpart()}:${this.deps.serverName}`;
    createEvent.originServerTs ??= this.deps.clock.now();
    return this.writer.roomIdFromCreateDraft(createEvent, version);
  }

  /** Appends a new room's create event, checking that (v12) it is the event the room id was derived from. */
  private async appendCreateEvent(ctx: RoomWriteContext, draft: EventDraft): Promise<void> {
    const stored = await ctx.append(draft);
    if (ctx.version.roomIdFromCreateEvent && roomIdFromCreateEventId(stored.eventId) !== ctx.roomId) {
      throw new Error('the create event does not match the room id derived from it');
    }
  }

  /**
   * Creates a room and appends to existing rooms in ONE transaction (room upgrades): `fn` appends the new
   * room's events to `created` and opens existing rooms with `open`. Everything commits or nothing does;
   * the results are published together afterwards.
   */
  async createRoomAlongside<T>(
    room: { version: RoomVersion; creator: string; isPublic: boolean; createEvent?: EventDraft | undefined },
    fn: (created: RoomWriteContext, open: (roomId: string) => Promise<RoomWriteContext>, trx: Knex.Transaction) => Promise<T>,
  ): Promise<{ roomId: string; value: T }> {
    // With `createEvent` the create event is appended first (v12 derives the room id from it); else `fn` does.
    if (room.version.roomIdFromCreateEvent && !room.createEvent) throw new Error('this room version needs the create event up front');
    const roomId = room.createEvent ? this.newRoomId(room.version, room.createEvent) : `!${randomRoomLocalpart()}:${this.deps.serverName}`;
    const contexts = new Map<string, RoomWriteContext>();
    let value: T;
    try {
      value = await this.deps.db.write(async (trx) => {
        const stream = await StreamAllocator.start(trx);
        const created = await this.writer.create(trx, stream, roomId, room.version, room.creator, room.isPublic);
        contexts.set(roomId, created);
        if (room.createEvent) await this.appendCreateEvent(created, room.createEvent);
        const open = async (id: string): Promise<RoomWriteContext> => {
          let ctx = contexts.get(id);
          if (!ctx) {
            ctx = await this.writer.open(trx, stream, id);
            contexts.set(id, ctx);
          }
          return ctx;
        };
        const out = await fn(created, open, trx);
        for (const ctx of contexts.values()) {
          await ctx.finish();
          this.writer.committed(ctx);
        }
        return out;
      });
    } catch (err) {
      for (const ctx of contexts.values()) {
        this.state.forget(ctx.result.createdGroups);
        this.writer.abandoned(ctx.roomId);
      }
      throw err;
    }
    this.versions.set(roomId, room.version);
    for (const ctx of contexts.values()) this.publish(ctx.result);
    return { roomId, value };
  }

  // ---------------------------------------------------------------------------------------------
  // Validation before a write joins a batch

  /**
   * Refuses an event that cannot be valid in `roomId` (400 M_BAD_JSON, 413 M_TOO_LARGE) before it is queued.
   * For a room not on this server, the strictest rules (those of the default room version, 6 or later) apply.
   */
  async assertValidDraft(roomId: string, draft: Omit<LocalEventDraft, 'roomId'>, meta: AppendMeta = {}): Promise<void> {
    // The room id is checked before it reaches a query (PostgreSQL refuses U+0000).
    assertValidLocalEvent({ ...draft, roomId }, this.strictestVersion(), { keysOnly: true });
    let version: RoomVersion;
    try {
      version = await this.roomVersion(this.deps.db.knex, roomId);
    } catch (err) {
      if (!(err instanceof MatrixError)) throw err;
      version = this.strictestVersion();
    }
    assertValidLocalEvent({ ...draft, roomId }, version);
    // Stored in columns of the event.
    for (const v of [meta.txnId, meta.senderDevice]) {
      if (v !== undefined && !isStorableString(v)) throw new MatrixError('M_INVALID_PARAM', 'Invalid transaction or device id');
    }
  }

  private strictestVersion(): RoomVersion {
    const preferred = getRoomVersion(this.deps.config.default_room_version);
    return preferred?.strictCanonicalJson ? preferred : getRoomVersion('11')!;
  }

  // ---------------------------------------------------------------------------------------------
  // Sending

  /**
   * Sends once per (device, room, type, txnId): the event row itself records the transaction, so a retry
   * finds it without a second write (spec: "Transaction identifiers").
   */
  async sendEventOnce(actor: Actor & { deviceId: string }, roomId: string, draft: Omit<EventDraft, 'sender'>, txnId: string): Promise<string> {
    const key = JSON.stringify([actor.userId, actor.deviceId, roomId, draft.type, txnId]);
    const pending = this.pendingSends.get(key);
    if (pending) return pending;
    const work = this.sendEvent(actor, roomId, draft, { txnId }, { sender: actor.userId, senderDevice: actor.deviceId, roomId, type: draft.type, txnId });
    this.pendingSends.set(key, work);
    try {
      return await work;
    } finally {
      this.pendingSends.delete(key);
    }
  }

  async sendEvent(
    actor: Actor,
    roomId: string,
    draft: Omit<EventDraft, 'sender'>,
    meta: AppendMeta = {},
    txn?: TransactionKey,
    once: EventOnce = (_trx, work) => work(),
  ): Promise<string> {
    await this.assertValidDraft(roomId, { ...draft, sender: actor.userId }, { ...meta, ...(actor.deviceId ? { senderDevice: actor.deviceId } : {}) });
    if (draft.type === 'm.room.canonical_alias' && draft.stateKey === '') await this.checkCanonicalAlias(roomId, draft.content);
    return this.write(roomId, (ctx, trx) => once(trx, async () => {
      const isMember = draft.type === 'm.room.member';
      if (!isMember && ctx.membershipOf(actor.userId) !== 'join') throw forbidden(`User ${actor.userId} is not in room ${roomId}`);
      if (draft.stateKey !== undefined) {
        // Setting the same state twice is idempotent: the existing event answers.
        const current = ctx.state.get(stateMapKey(draft.type, draft.stateKey));
        if (current && current.sender === actor.userId && canonicalEqual(current.content, draft.content)) return ctx.idOf(current);
      }
      const ev = await ctx.append({ ...draft, sender: actor.userId }, { ...meta, ...(actor.deviceId ? { senderDevice: actor.deviceId } : {}) });
      return ev.eventId;
    }), txn);
  }

  /** Spec: "m.room.canonical_alias" — every alias must be valid, and local ones must point at this room. */
  private async checkCanonicalAlias(roomId: string, content: Record<string, unknown>): Promise<void> {
    const aliases: unknown[] = [];
    if (content.alias !== undefined && content.alias !== null) aliases.push(content.alias);
    if (content.alt_aliases !== undefined) {
      if (!Array.isArray(content.alt_aliases)) throw new MatrixError('M_INVALID_PARAM', 'alt_aliases must be a list');
      aliases.push(...content.alt_aliases);
    }
    for (const alias of aliases) {
      if (typeof alias !== 'string' || !/^#[^:]+:.+$/.test(alias)) throw new MatrixError('M_INVALID_PARAM', typeof alias === 'string' ? `Invalid alias ${alias}` : 'Invalid alias');
      if (serverNameOf(alias) !== this.deps.serverName) continue;
      const found = await roomsRepo.getAlias(this.deps.db.knex, alias);
      if (found?.roomId !== roomId) throw new MatrixError('M_BAD_ALIAS', `Alias ${alias} does not point to this room`);
    }
  }

  /** PUT /rooms/{roomId}/redact: allowed for the sender of the target or anyone with the redact level. */
  async redact(
    actor: Actor,
    roomId: string,
    targetId: string,
    reason: string | undefined,
    meta: AppendMeta = {},
    once: EventOnce = (_trx, work) => work(),
  ): Promise<string> {
    const content: Record<string, unknown> = reason !== undefined ? { reason } : {};
    await this.assertValidDraft(roomId, { type: 'm.room.redaction', content, sender: actor.userId, redacts: targetId }, meta);
    return this.write(roomId, (ctx, trx) => once(trx, async () => {
      if (ctx.membershipOf(actor.userId) !== 'join') throw forbidden(`User ${actor.userId} is not in room ${roomId}`);
      const target = await this.events.get(trx, targetId);
      const own = target?.pdu.sender === actor.userId;
      // As Synapse: 400, an event id of another room is a malformed request, not a missing event.
      if (target && target.pdu.room_id !== roomId) throw new MatrixError('M_INVALID_PARAM', 'Cannot redact event from a different room', 400);
      if (!own && userPowerLevel(ctx.state, actor.userId, ctx.version) < powerLevelFor(ctx.state, 'redact', ctx.version)) {
        throw forbidden('You do not have permission to redact this event');
      }
      const ev = await ctx.append(
        { type: 'm.room.redaction', content, sender: actor.userId, redacts: targetId },
        { ...meta, ...(actor.deviceId ? { senderDevice: actor.deviceId } : {}) },
      );
      return ev.eventId;
    }));
  }

  // ---------------------------------------------------------------------------------------------
  // Membership

  async resolveRoomIdOrAlias(roomIdOrAlias: string): Promise<string> {
    if (roomIdOrAlias.startsWith('!')) return roomIdOrAlias;
    if (!roomIdOrAlias.startsWith('#')) throw new MatrixError('M_INVALID_PARAM', 'Expected a room id or alias');
    const alias = await this.findLocalAlias(roomIdOrAlias);
    if (!alias) throw notFound(`Room alias ${roomIdOrAlias} not found`);
    return alias.roomId;
  }

  /**
   * Spec: "POST /join": of the request body only `reason` reaches the member event; the display name and
   * avatar come from the user's profile (so no body can claim another name or a join authorisation).
   * `via` (the `via`/`server_name` query parameters) names servers to join through.
   */
  async join(actor: Actor, roomIdOrAlias: string, reason?: string, via: readonly string[] = [], body: Readonly<Record<string, unknown>> = {}): Promise<string> {
    const remoteAlias = roomIdOrAlias.startsWith('#') && serverNameOf(roomIdOrAlias) !== this.deps.serverName;
    const roomId = remoteAlias ? undefined : await this.resolveRoomIdOrAlias(roomIdOrAlias);
    if (roomId && (await roomBlock(this.deps.db.knex, roomId))) throw forbidden('This room has been blocked on this server');
    const room = roomId ? await roomsRepo.getRoom(this.deps.db.knex, roomId) : undefined;
    const extras = clientJoinExtras(body);
    const requested: Record<string, unknown> = reason !== undefined ? { ...extras, reason } : { ...extras };
    if (!room) {
      // Guests join only rooms known to say can_join: here, through the state their invite showed.
      if (actor.isGuest && !(roomId && (await this.invitedGuestsCanJoin(roomId, actor.userId)))) throw forbidden('Guest access not allowed');
      // A room this server is not in yet: only federation can join it.
      if (!this.remoteJoiner || (roomId && serverNameOf(roomId) === this.deps.serverName)) throw notFound('Unknown room');
      assertValidLocalEvent({ type: 'm.room.member', stateKey: actor.userId, sender: actor.userId, content: requested }, this.strictestVersion());
      return this.remoteJoiner(actor, roomIdOrAlias, requested, via);
    }
    const localRoomId = room.roomId;
    // A room no local user is in any more: our copy of its state is stale, so a resident server builds the join.
    if (actor.isGuest && !(await this.guestsCanJoin(localRoomId))) throw forbidden('Guest access not allowed');
    const residents = await this.residentServersIfLeft(localRoomId, actor.userId, via);
    if (residents.length && this.remoteJoiner) return this.remoteJoiner(actor, localRoomId, requested, residents);
    const profile = (await getProfile(this.deps.db.knex, actor.userId)) ?? { displayname: null, avatar_url: null };
    const content: Record<string, unknown> = { ...extras, membership: 'join' };
    if (profile.displayname) content.displayname = profile.displayname;
    if (profile.avatar_url) content.avatar_url = profile.avatar_url;
    if (reason !== undefined) content.reason = reason;
    await this.assertValidDraft(localRoomId, { type: 'm.room.member', stateKey: actor.userId, content, sender: actor.userId });
    const elsewhere = await this.write(localRoomId, async (ctx, trx) => {
      const current = ctx.state.get(stateMapKey('m.room.member', actor.userId));
      const membership = current?.content.membership;
      // Joining again with the same profile changes nothing: answer without a new event.
      // Checked again under the room's lock: guest_access may have changed since.
      if (actor.isGuest && ctx.state.get(stateMapKey('m.room.guest_access', ''))?.content.guest_access !== 'can_join') {
        throw forbidden('Guest access not allowed');
      }
      if (membership === 'join' && canonicalEqual(current!.content, content)) {
        return undefined;
      }
      if (membership !== 'join' && membership !== 'invite' && isRestrictedRoom(ctx.state, ctx.version)) {
        const authoriser = await localJoinAuthoriser(trx, ctx.state, ctx.version, actor.userId, this.deps.serverName);
        // No local user may invite: a server with one must authorise the join.
        if (!authoriser) return authorisingServers(ctx.state, ctx.version, this.deps.serverName);
        content.join_authorised_via_users_server = authoriser;
      }
      await ctx.append({ type: 'm.room.member', stateKey: actor.userId, content, sender: actor.userId });
      return undefined;
    });
    if (elsewhere) {
      if (!elsewhere.length || !this.remoteJoiner) throw forbidden('No server in the room can authorise this join');
      return this.remoteJoiner(actor, localRoomId, requested, elsewhere);
    }
    await roomsRepo.unforgetRoom(this.deps.db.knex, actor.userId, localRoomId);
    return localRoomId;
  }

  /**
   * A room known only through an invite: the stripped state that came with it must hold m.room.guest_access
   * `can_join` (Skjól sends it; a server that does not leaves its guests outside, as Synapse does).
   */
  private async invitedGuestsCanJoin(roomId: string, userId: string): Promise<boolean> {
    const eventId = await stateRepo.getCurrentStateEventId(this.deps.db.knex, roomId, 'm.room.member', userId);
    const invite = eventId ? await this.events.get(this.deps.db.knex, eventId) : undefined;
    if (invite?.pdu.content.membership !== 'invite') return false;
    const stripped = (invite.pdu.unsigned as { invite_room_state?: unknown } | undefined)?.invite_room_state;
    if (!Array.isArray(stripped)) return false;
    return stripped.some((e: unknown) => {
      const ev = e as { type?: unknown; state_key?: unknown; content?: { guest_access?: unknown } } | null;
      return ev?.type === 'm.room.guest_access' && ev.state_key === '' && ev.content?.guest_access === 'can_join';
    });
  }

  /** Spec: "Guest access", server behaviour: m.room.guest_access must be present with `can_join`. */
  private async guestsCanJoin(roomId: string): Promise<boolean> {
    const eventId = await stateRepo.getCurrentStateEventId(this.deps.db.knex, roomId, 'm.room.guest_access', '');
    const event = eventId ? await this.events.get(this.deps.db.knex, eventId) : undefined;
    return event?.pdu.content.guest_access === 'can_join';
  }

  /**
   * Servers to join through when no local user is joined to a known room (as Synapse's
   * `_should_perform_remote_join`): `via`, the server of whoever invited the user since, the servers of
   * members joined in our last view, the room id's server. Empty while a local user is joined, or when no
   * other server ever held the room.
   */
  private async residentServersIfLeft(roomId: string, userId: string, via: readonly string[]): Promise<string[]> {
    const own = this.deps.serverName;
    const joined = await stateRepo.roomMembers(this.deps.db.knex, roomId, ['join']);
    if (joined.some((u) => serverNameOf(u) === own)) return [];
    const m = await stateRepo.currentMembership(this.deps.db.knex, roomId, userId);
    const invite = m?.membership === 'invite' ? await this.events.get(this.deps.db.knex, m.eventId) : undefined;
    const inviter = invite ? [serverNameOf(invite.pdu.sender) ?? ''] : [];
    const servers = [...via, ...inviter, ...joined.map((u) => serverNameOf(u) ?? ''), serverNameOf(roomId) ?? ''];
    return [...new Set(servers)].filter((s) => s && s !== own);
  }

  async invite(actor: Actor, roomId: string, target: string, reason?: string, isDirect?: boolean): Promise<void> {
    if (!/^@[^:]+:.+$/.test(target)) throw new MatrixError('M_INVALID_PARAM', 'Invalid user id');
    if (await roomBlock(this.deps.db.knex, roomId)) throw forbidden('This room has been blocked on this server');
    if (this.remoteInviter && serverNameOf(target) !== this.deps.serverName) {
      // The invitee's server must countersign the invite before it is appended (federation).
      const content: Record<string, unknown> = { membership: 'invite' };
      if (reason !== undefined) content.reason = reason;
      if (isDirect) content.is_direct = true;
      await this.assertValidDraft(roomId, { type: 'm.room.member', stateKey: target, content, sender: actor.userId });
      return this.remoteInviter(actor, roomId, target, content);
    }
    let profile = await getProfile(this.deps.db.knex, target);
    if (!profile && serverNameOf(target) === this.deps.serverName && (await this.queryUser?.(target))) {
      profile = await getProfile(this.deps.db.knex, target);
    }
    if (!profile && serverNameOf(target) === this.deps.serverName) throw notFound('Unknown user');
    const content: Record<string, unknown> = { membership: 'invite' };
    if (profile?.displayname) content.displayname = profile.displayname;
    if (profile?.avatar_url) content.avatar_url = profile.avatar_url;
    if (reason !== undefined) content.reason = reason;
    if (isDirect) content.is_direct = true;
    await this.assertValidDraft(roomId, { type: 'm.room.member', stateKey: target, content, sender: actor.userId });
    await this.write(roomId, async (ctx) => {
      const current = ctx.membershipOf(target);
      if (current === 'join') throw forbidden(`${target} is already in the room`);
      if (current === 'ban') throw forbidden(`${target} is banned from the room`);
      await ctx.append({ type: 'm.room.member', stateKey: target, content, sender: actor.userId });
    });
  }

  /**
   * A member invite redeeming a third-party invite (identity/thirdPartyInvites.ts): made on behalf of the
   * original inviter, who may have left or be a user of another server; the auth rules check the signed block.
   */
  async inviteOnBehalf(sender: string, roomId: string, target: string, content: Record<string, unknown>): Promise<void> {
    if (this.remoteInviter && serverNameOf(target) !== this.deps.serverName) return this.remoteInviter({ userId: sender }, roomId, target, content);
    await this.assertValidDraft(roomId, { type: 'm.room.member', stateKey: target, content, sender });
    await this.write(roomId, async (ctx) => {
      const current = ctx.membershipOf(target);
      if (current === 'join') throw forbidden(`${target} is already in the room`);
      if (current === 'ban') throw forbidden(`${target} is banned from the room`);
      await ctx.append({ type: 'm.room.member', stateKey: target, content, sender });
    });
  }

  /** leave (own), kick (other → leave), ban, unban (ban → leave). */
  async setMembership(actor: Actor, roomId: string, target: string, membership: 'leave' | 'ban', reason?: string, expect?: 'unban' | 'kick'): Promise<void> {
    if (!/^@[^:]+:.+$/.test(target)) throw new MatrixError('M_INVALID_PARAM', 'Invalid user id');
    const content: Record<string, unknown> = { membership };
    if (reason !== undefined) content.reason = reason;
    await this.assertValidDraft(roomId, { type: 'm.room.member', stateKey: target, content, sender: actor.userId });
    if (this.remoteLeaver && target === actor.userId && membership === 'leave') {
      // Rejecting an invite (or taking back a knock) for a room only other servers have, or one we left.
      const known = await roomsRepo.getRoom(this.deps.db.knex, roomId);
      const m = await stateRepo.currentMembership(this.deps.db.knex, roomId, target);
      const pending = m?.membership === 'invite' || m?.membership === 'knock';
      if (!known && !pending) throw notFound('Unknown room');
      if (!known || (pending && !(await this.hasLocalMember(this.deps.db.knex, roomId)))) return this.remoteLeaver(actor, roomId, reason);
    }
    await this.write(roomId, async (ctx) => {
      const current = ctx.membershipOf(target);
      if (expect === 'unban' && current !== 'ban') throw forbidden(`${target} is not banned`);
      if (expect === 'kick' && current !== 'join' && current !== 'invite' && current !== 'knock') {
        throw forbidden(`${target} is not in the room`);
      }
      if (target === actor.userId && membership === 'leave' && (current === undefined || current === 'leave' || current === 'ban')) {
        throw forbidden(`${target} is not in the room`);
      }
      await ctx.append({ type: 'm.room.member', stateKey: target, content, sender: actor.userId });
    });
  }

  async forget(actor: Actor, roomId: string): Promise<void> {
    const m = await stateRepo.currentMembership(this.deps.db.knex, roomId, actor.userId);
    if (!m) throw notFound('Unknown room');
    if (m.membership === 'join' || m.membership === 'invite' || m.membership === 'knock') {
      throw new MatrixError('M_UNKNOWN', 'User must leave the room before forgetting it', 400);
    }
    await roomsRepo.forgetRoom(this.deps.db.knex, actor.userId, roomId);
  }

  async joinedRooms(userId: string): Promise<string[]> {
    return (await stateRepo.roomsForUser(this.deps.db.knex, userId, ['join'])).map((r) => r.roomId);
  }

  /** Pushes a profile change into the member event of every room the user is in. */
  async propagateProfile(userId: string): Promise<void> {
    const profile = (await getProfile(this.deps.db.knex, userId)) ?? { displayname: null, avatar_url: null };
    const fields = { displayname: profile.displayname, avatar_url: profile.avatar_url };
    const invalid = canonicalJsonProblem(fields, contentRules(this.strictestVersion()));
    if (invalid) {
      this.deps.logger.warn({ userId, reason: invalid }, 'profile not propagated: no event can carry it');
      return;
    }
    for (const roomId of await this.joinedRooms(userId)) {
      try {
        await this.write(roomId, async (ctx) => {
          const current = ctx.state.get(stateMapKey('m.room.member', userId));
          if (current?.content.membership !== 'join') return;
          const content: Record<string, unknown> = { ...current.content, membership: 'join' };
          delete content.displayname;
          delete content.avatar_url;
          delete content.reason;
          if (profile.displayname) content.displayname = profile.displayname;
          if (profile.avatar_url) content.avatar_url = profile.avatar_url;
          await ctx.append({ type: 'm.room.member', stateKey: userId, content, sender: userId });
        });
      } catch (err) {
        // A room whose rules refuse the update keeps the old profile; the others still change.
        this.deps.logger.warn({ roomId, err: (err as Error).message }, 'profile propagation refused');
      }
    }
  }

  /** Leaves every room (deactivation). */
  async leaveAllRooms(userId: string): Promise<void> {
    const rooms = await stateRepo.roomsForUser(this.deps.db.knex, userId, ['join', 'invite', 'knock']);
    for (const { roomId } of rooms) {
      try {
        await this.setMembership({ userId }, roomId, userId, 'leave');
      } catch (err) {
        this.deps.logger.warn({ roomId, err: (err as Error).message }, 'leave on deactivation failed');
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Aliases (spec: "Room aliases")

  async createAlias(actor: Actor, alias: string, roomId: string): Promise<void> {
    const server = alias.slice(alias.indexOf(':') + 1);
    if (!alias.startsWith('#') || !alias.includes(':') || /\s/.test(alias)) throw new MatrixError('M_INVALID_PARAM', 'Invalid room alias');
    if (server !== this.deps.serverName) throw new MatrixError('M_INVALID_PARAM', 'Room alias must be on this server');
    this.checkAliasExclusive(alias, actor.userId);
    if (!(await roomsRepo.getRoom(this.deps.db.knex, roomId))) throw notFound('Unknown room');
    if (actor.appserviceId !== undefined) {
      // As Synapse: an application service names rooms in its own alias namespace, joined or not.
      if (!this.aliasHooks?.inNamespaceOf(alias, actor.appserviceId)) {
        throw new MatrixError('M_EXCLUSIVE', 'This application service has not reserved this kind of alias', 400);
      }
    } else {
      const m = await stateRepo.currentMembership(this.deps.db.knex, roomId, actor.userId);
      if (m?.membership !== 'join') throw forbidden('You must be in the room to give it an alias');
    }
    if (!(await roomsRepo.insertAlias(this.deps.db.knex, alias, roomId, actor.userId, this.deps.clock.now()))) {
      throw new MatrixError('M_UNKNOWN', `Room alias ${alias} already exists`, 409);
    }
  }

  async resolveAlias(alias: string): Promise<{ room_id: string; servers: string[] }> {
    const server = alias.startsWith('#') ? serverNameOf(alias) : undefined;
    if (this.remoteAliasResolver && server && server !== this.deps.serverName) {
      const { roomId, servers } = await this.remoteAliasResolver(alias);
      return { room_id: roomId, servers: [...new Set(servers)] };
    }
    const found = await this.findLocalAlias(alias);
    if (!found) throw notFound(`Room alias ${alias} not found`);
    return { room_id: found.roomId, servers: [this.deps.serverName] };
  }

  async deleteAlias(actor: Actor, alias: string, isAdmin: boolean): Promise<void> {
    const found = await roomsRepo.getAlias(this.deps.db.knex, alias);
    if (!found) throw notFound(`Room alias ${alias} not found`);
    if (found.creator !== actor.userId && !isAdmin) {
      const version = await this.roomVersion(this.deps.db.knex, found.roomId);
      const state = await this.reader.currentState(found.roomId);
      if (userPowerLevel(state, actor.userId, version) < 50) throw forbidden('You may not delete this alias');
    }
    await roomsRepo.deleteAlias(this.deps.db.knex, alias);
    await this.dropFromCanonicalAlias(actor, found.roomId, alias);
  }

  /** As Synapse: a deleted alias leaves m.room.canonical_alias (alias, alt_aliases), sent by the deleter if allowed. */
  private async dropFromCanonicalAlias(actor: Actor, roomId: string, alias: string): Promise<void> {
    const eventId = await stateRepo.getCurrentStateEventId(this.deps.db.knex, roomId, 'm.room.canonical_alias', '');
    const current = eventId ? (await this.events.get(this.deps.db.knex, eventId))?.pdu.content : undefined;
    if (!current) return;
    const content: Record<string, unknown> = { ...current };
    let changed = false;
    if (content.alias === alias) {
      delete content.alias;
      changed = true;
    }
    if (Array.isArray(content.alt_aliases) && content.alt_aliases.includes(alias)) {
      const rest = content.alt_aliases.filter((a) => a !== alias);
      if (rest.length) content.alt_aliases = rest;
      else delete content.alt_aliases;
      changed = true;
    }
    if (!changed) return;
    try {
      await this.sendEvent(actor, roomId, { type: 'm.room.canonical_alias', stateKey: '', content });
    } catch (err) {
      if (!(err instanceof MatrixError)) throw err;
      this.deps.logger.info({ roomId, err: err.message }, 'could not update m.room.canonical_alias after deleting an alias');
    }
  }

  async roomAliases(actor: Actor, roomId: string): Promise<string[]> {
    await this.reader.assertCanSeeRoom(actor.userId, roomId);
    return roomsRepo.aliasesForRoom(this.deps.db.knex, roomId);
  }
}

export type { WriteResult } from './roomWriter.js';
export type { StoredEvent };
