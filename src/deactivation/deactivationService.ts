import type { DeviceListService } from '../e2ee/deviceLists.js';
import type { PresenceService } from '../edus/presence.js';
import { MatrixError, invalidParam, notFound } from '../errors.js';
import { ROOM_CONFIG_TYPES, pruneStoredEvents } from '../rooms/eventPurge.js';
import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import {
  advanceDeactivationJob,
  deleteDeactivationJob,
  getDeactivationJob,
  pendingDeactivationJobs,
  putDeactivationJob,
  recordDeactivationFailure,
} from '../storage/repositories/deactivationJobs.js';
import { forgetRoom } from '../storage/repositories/rooms.js';
import * as stateRepo from '../storage/repositories/state.js';
import { markDeactivated } from '../storage/repositories/users.js';
import { deleteUserData, eventsOfUser } from '../storage/repositories/userErasure.js';
import type { UserService } from '../users/userService.js';
import { compactAfterErasure } from './compaction.js';
import { scrubQueuedEvents } from './queues.js';

// Deactivation as a durable job (migrations/0020): each step is idempotent and the next step is recorded
// once it is done, so a process that dies mid-way resumes at start-up from the step it was in.

/** Steps in order; erasure adds `redact` (while the user is still in the rooms), `purge` and `compact`. */
const STEPS = ['presence', 'redact', 'leave', 'data', 'hooks', 'purge', 'compact'] as const;
type Step = (typeof STEPS)[number];
const ERASE_ONLY: ReadonlySet<Step> = new Set(['redact', 'purge', 'compact']);

/** State the redaction events cover: what shows the user's name, face or words. */
const REDACTABLE_STATE: ReadonlySet<string> = new Set(['m.room.member', 'm.room.name', 'm.room.topic', 'm.room.avatar']);
const PAGE = 200;

export interface DeactivationDeps extends ServiceDeps {
  rooms: RoomService;
  users: UserService;
  presence: PresenceService;
  deviceLists: DeviceListService;
  /** Resolves when after-commit work queued so far (search/relations indexer, push) is done. */
  afterCommitIdle: () => Promise<void>;
}

export class DeactivationService {
  private readonly running = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(private readonly deps: DeactivationDeps) {}

  /** Resumes the jobs a previous process left unfinished (called at start-up, not awaited). */
  resume(): void {
    void pendingDeactivationJobs(this.deps.db.knex)
      .then((jobs) => {
        for (const job of jobs) {
          this.deps.logger.info({ userId: job.userId, step: job.step, erase: job.erase }, 'resuming deactivation');
          void this.run(job.userId);
        }
      })
      .catch((err: unknown) => this.deps.logger.error({ err }, 'reading deactivation jobs failed'));
  }

  /**
   * Admin API and CLI: deactivates (and with `erase` erases) a local account and runs the job to its end.
   * Unknown and remote users, an already erased account and deactivating twice are refused.
   */
  async deactivate(userId: string, erase: boolean): Promise<void> {
    if (!/^@[^:]+:.+$/.test(userId)) throw invalidParam('Invalid user id');
    if (userId.slice(userId.indexOf(':') + 1) !== this.deps.serverName) throw invalidParam('Only local users can be deactivated');
    const user = await this.deps.users.getUser(userId);
    if (!user) throw notFound(`User ${userId} does not exist`);
    if (user.erased) throw new MatrixError('M_INVALID_PARAM', `User ${userId} is already erased`, 400);
    if (user.deactivated && !erase) throw new MatrixError('M_INVALID_PARAM', `User ${userId} is already deactivated`, 400);
    await this.deps.db.knex.transaction(async (trx) => {
      await markDeactivated(trx, userId, erase);
      await putDeactivationJob(trx, userId, erase, this.deps.clock.now());
    });
    await this.deps.users.devices.logoutAll(userId);
    await this.run(userId);
  }

  /** Runs (or joins the run of) the user's job; resolves when it is finished or the server stops. */
  run(userId: string): Promise<void> {
    const current = this.running.get(userId);
    if (current) return current;
    const p = this.runJob(userId).finally(() => this.running.delete(userId));
    this.running.set(userId, p);
    return p;
  }

  /** Lets running jobs stop at their next step boundary (they resume at the next start). */
  async close(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.running.values()]);
  }

  /** Resolves when no job runs (tests). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running.values()]);
  }

  private async runJob(userId: string): Promise<void> {
    const { db, clock, logger } = this.deps;
    for (;;) {
      if (this.stopping) return;
      const job = await getDeactivationJob(db.knex, userId);
      if (!job) return;
      const index = STEPS.indexOf(job.step as Step);
      const step = STEPS[index < 0 ? 0 : index]!;
      try {
        if (job.erase || !ERASE_ONLY.has(step)) await this.runStep(step, userId);
      } catch (err) {
        if (this.stopping) return;
        // The step stays recorded: the next start tries it again; this run stops here.
        logger.error({ err, userId, step }, 'deactivation step failed');
        await recordDeactivationFailure(db.knex, userId, (err as Error).message ?? String(err), clock.now()).catch(() => undefined);
        return;
      }
      const next = STEPS[STEPS.indexOf(step) + 1];
      if (next === undefined) {
        await deleteDeactivationJob(db.knex, userId);
        logger.info({ userId, erase: job.erase }, 'deactivation finished');
        return;
      }
      await advanceDeactivationJob(db.knex, userId, next, clock.now());
    }
  }

  private async runStep(step: Step, userId: string): Promise<void> {
    switch (step) {
      case 'presence':
        // Offline without a status message, told to everyone sharing a room while the user still does.
        return this.deps.presence.setPresence(userId, 'offline', undefined);
      case 'redact':
        if (this.deps.config.redact_events_on_erasure) await this.sendRedactions(userId);
        return;
      case 'leave':
        return this.leaveEverything(userId);
      case 'data':
        await this.deps.db.write(async (trx) => {
          await deleteUserData(trx, userId);
          // Cross-signing and device keys are gone: others re-query and find none.
          await this.deps.deviceLists.recordChange(trx, userId);
        });
        await this.deps.deviceLists.notifyChange(userId);
        return;
      case 'hooks':
        return this.runHooks(userId);
      case 'purge':
        // The indexer and push work from the committed events in memory: let them finish first, or a late
        // one would index the text of an event this step has just purged.
        await this.deps.afterCommitIdle();
        await this.purgeContent(userId);
        await scrubQueuedEvents(this.deps, userId);
        return;
      case 'compact':
        return compactAfterErasure(this.deps.db, this.deps.logger);
    }
  }

  /** m.room.redaction for each unredacted message and profile-bearing state event, in rooms the user is in. */
  private async sendRedactions(userId: string): Promise<void> {
    const joined = new Set(await this.deps.rooms.joinedRooms(userId));
    for await (const page of this.pagesOfEvents(userId)) {
      const targets = page.filter(
        (e) => e.sender === userId && joined.has(e.roomId) && !e.redacted && e.type !== 'm.room.redaction' && (e.stateKey === null || REDACTABLE_STATE.has(e.type)),
      );
      await Promise.all(
        targets.map((e) =>
          this.deps.rooms.redact({ userId }, e.roomId, e.eventId, undefined).catch((err: unknown) => {
            // A room whose rules refuse it keeps the event for others; the local purge still removes it here.
            this.deps.logger.warn({ roomId: e.roomId, err: (err as Error).message }, 'redaction on erasure refused');
          }),
        ),
      );
    }
  }

  /** The user's events (sent, or member events about them) in stream order, a page at a time; stops when the server does. */
  private async *pagesOfEvents(userId: string): AsyncGenerator<Awaited<ReturnType<typeof eventsOfUser>>> {
    let after = 0;
    for (;;) {
      if (this.stopping) throw new Error('server stopping');
      const page = await eventsOfUser(this.deps.db.knex, userId, after, PAGE);
      if (!page.length) return;
      after = page[page.length - 1]!.streamOrdering;
      yield page;
    }
  }

  /** Leaves joined rooms, rejects invites and withdraws knocks (over federation where needed), then forgets them. */
  private async leaveEverything(userId: string): Promise<void> {
    await this.deps.rooms.leaveAllRooms(userId);
    const rows = await stateRepo.roomsForUser(this.deps.db.knex, userId, ['leave', 'ban']);
    for (const { roomId } of rows) await forgetRoom(this.deps.db.knex, userId, roomId);
    const left = await stateRepo.roomsForUser(this.deps.db.knex, userId, ['join', 'invite', 'knock']);
    // An invite whose remote server is unreachable stays pending; erasure must not wait for it.
    if (left.length) this.deps.logger.warn({ userId, rooms: left.length }, 'deactivated user could not leave every room');
  }

  private async runHooks(userId: string): Promise<void> {
    const job = await getDeactivationJob(this.deps.db.knex, userId);
    const hooks = this.deps.users.hooks;
    await hooks.run('onDeactivated', hooks.onDeactivated, userId, { erase: job?.erase ?? false });
  }

  /** Every event the user sent, and every member event about them, keeps only its redacted form (room configuration state excepted). */
  private async purgeContent(userId: string): Promise<void> {
    for await (const page of this.pagesOfEvents(userId)) {
      const byRoom = new Map<string, string[]>();
      for (const e of page) {
        if (e.stateKey !== null && ROOM_CONFIG_TYPES.has(e.type)) continue;
        const ids = byRoom.get(e.roomId) ?? [];
        ids.push(e.eventId);
        byRoom.set(e.roomId, ids);
      }
      for (const [roomId, ids] of byRoom) await pruneStoredEvents(this.deps.rooms, this.deps.db, roomId, ids);
    }
  }
}
