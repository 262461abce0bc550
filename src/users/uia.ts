import { randomBytes } from 'node:crypto';
import { MatrixError, limitExceeded, type ErrCode } from '../errors.js';
import { RateLimiter } from '../http/rateLimit.js';
import type { ServiceDeps } from '../serviceDeps.js';
import type { Db } from '../storage/database.js';
import * as sessionsRepo from '../storage/repositories/uiaSessions.js';
import type { UiaSessionRecord } from '../storage/repositories/uiaSessions.js';

// Spec: Client-Server API, "User-Interactive Authentication API".

/** The 401 reply that tells the client which flows remain; with errcode/error when a stage just failed. */
export class UiaRequiredError extends MatrixError {
  constructor(
    readonly body: { flows: Array<{ stages: string[] }>; params: Record<string, unknown>; session: string; completed: string[] },
    failure?: { errcode: ErrCode; error: string },
  ) {
    super(failure?.errcode ?? 'M_UNAUTHORIZED', failure?.error ?? 'User-interactive authentication required', 401);
    this.failed = failure !== undefined;
  }

  private readonly failed: boolean;

  override toJSON(): Record<string, unknown> {
    const body: Record<string, unknown> = { ...this.body };
    // As Synapse: `completed` is left out of the first answer only; a failed stage always lists it.
    if (!this.failed && body.completed && (body.completed as string[]).length === 0) delete body.completed;
    return this.failed ? { errcode: this.errcode, error: this.message, ...body } : body;
  }
}

/** A stage that did not pass; the client gets 401 with the flows again and this errcode. */
export class StageFailed extends Error {
  constructor(
    readonly errcode: ErrCode,
    message: string,
    /** True when retrying cannot help: the request ends with 403 instead of the flows again. */
    readonly final = false,
  ) {
    super(message);
  }
}

export interface StageContext {
  db: Db;
  /** The user the operation acts for; undefined during registration. */
  userId: string | undefined;
  /** Private per-session data a stage may record (e.g. the registration token it consumed). */
  data: Record<string, unknown>;
}

export interface UiaStage {
  readonly type: string;
  /** Parameters sent to the client in `params[type]`, if any. */
  params?(): Record<string, unknown> | undefined;
  /** Throws StageFailed when the submitted auth dict does not pass. */
  check(auth: Record<string, unknown>, ctx: StageContext): Promise<void>;
  /** Gives back anything the stage held when a session expires unfinished. */
  release?(db: Db, data: Record<string, unknown>): Promise<void>;
}

export interface UiaRequest {
  /** The request body's `auth` dict (anything: it is validated here). */
  auth: unknown;
  /** Acceptable flows, each a list of stage types. */
  flows: string[][];
  /** What the session is for, e.g. `DELETE /devices/ABC`: a session cannot be carried to another operation. */
  operation: string;
  userId?: string;
  /**
   * The request's other parameters (never secrets): kept with a new session, replaced when a later request
   * brings some, and given back when it brings none, so a client may continue with only `auth` (as Synapse).
   */
  clientParams?: Record<string, unknown>;
}

export interface UiaPassed {
  sessionId: string;
  data: Record<string, unknown>;
  /** `clientParams` of this request, or of the earlier request that last carried some. */
  clientParams: Record<string, unknown>;
}

const CLIENT_PARAMS = 'clientParams';

const SESSION_LIFETIME_MS = 2 * 60 * 60 * 1000;
const CLEANUP_INTERVAL_MS = 5 * 60 * 1000;

export class UserInteractiveAuth {
  private readonly stages = new Map<string, UiaStage>();
  private lastCleanup = 0;
  /** rc_login.failed_attempts for a signed-in user's failed stages (as Synapse), so a stolen token cannot guess the password. */
  private readonly failedLimiter: RateLimiter | undefined;

  constructor(private readonly deps: ServiceDeps) {
    if (deps.config.rc_enabled) this.failedLimiter = new RateLimiter(deps.config.rc_login.failed_attempts, () => deps.clock.now());
  }

  addStage(stage: UiaStage): void {
    this.stages.set(stage.type, stage);
  }

  /** Runs one round of UIA. Returns when a flow is complete; otherwise throws the 401 reply. */
  async authenticate(req: UiaRequest): Promise<UiaPassed> {
    const knex = this.deps.db.knex;
    const userId = req.userId;
    if (this.failedLimiter && userId !== undefined) {
      const wait = this.failedLimiter.check(userId);
      if (wait > 0) throw limitExceeded(wait);
    }
    const auth = isObject(req.auth) ? req.auth : undefined;
    const sessionId = auth && typeof auth.session === 'string' ? auth.session : undefined;

    let session: UiaSessionRecord;
    if (sessionId !== undefined) {
      const found = await sessionsRepo.getUiaSession(knex, sessionId);
      if (!found || found.createdTs + SESSION_LIFETIME_MS < this.deps.clock.now()) {
        throw new MatrixError('M_UNKNOWN', 'Unknown session ID', 400);
      }
      if (found.fingerprint !== req.operation || found.userId !== (req.userId ?? null)) {
        throw new MatrixError('M_FORBIDDEN', 'Requested operation has changed during the UI authentication session.', 403);
      }
      session = found;
      if (req.clientParams !== undefined && Object.keys(req.clientParams).length > 0) {
        session.data[CLIENT_PARAMS] = req.clientParams;
        await sessionsRepo.updateUiaSession(knex, session.sessionId, session.completed, session.data);
      }
    } else {
      session = await this.createSession(req);
    }

    const type = auth && typeof auth.type === 'string' ? auth.type : undefined;
    if (type !== undefined && !session.completed.includes(type)) {
      const stage = this.stages.get(type);
      const offered = req.flows.some((flow) => flow.includes(type));
      if (!stage || !offered) throw new MatrixError('M_UNRECOGNIZED', `Unrecognized authentication type '${type}'`, 400);
      try {
        await stage.check(auth!, { db: knex, userId: req.userId, data: session.data });
      } catch (err) {
        if (!(err instanceof StageFailed)) throw err;
        if (userId !== undefined) this.failedLimiter?.take(userId);
        if (err.final) throw new MatrixError(err.errcode, err.message, 403);
        throw this.required(req, session, { errcode: err.errcode, error: err.message });
      }
      session.completed = [...session.completed, type];
      await sessionsRepo.updateUiaSession(knex, session.sessionId, session.completed, session.data);
    }

    if (req.flows.some((flow) => flow.every((s) => session.completed.includes(s)))) {
      const stored = session.data[CLIENT_PARAMS];
      const clientParams = isObject(stored) ? stored : (req.clientParams ?? {});
      return { sessionId: session.sessionId, data: session.data, clientParams };
    }
    throw this.required(req, session);
  }

  /** Private data of a live session for `operation` (undefined if unknown, expired or for another operation). */
  async sessionData(sessionId: string, operation: string): Promise<Record<string, unknown> | undefined> {
    const found = await sessionsRepo.getUiaSession(this.deps.db.knex, sessionId);
    if (!found || found.createdTs + SESSION_LIFETIME_MS < this.deps.clock.now() || found.fingerprint !== operation) return undefined;
    return found.data;
  }

  /** Records one key of a session's private data (a registration's password hash, its registered user). */
  async setSessionData(sessionId: string, key: string, value: unknown): Promise<void> {
    const found = await sessionsRepo.getUiaSession(this.deps.db.knex, sessionId);
    if (!found) return;
    found.data[key] = value; // prototype-safe: keys are this server's constants
    await sessionsRepo.updateUiaSession(this.deps.db.knex, sessionId, found.completed, found.data);
  }

  /** Ends a session once the operation it authorised has succeeded, so it cannot be replayed. */
  async finish(passed: UiaPassed, db: Db = this.deps.db.knex): Promise<void> {
    await sessionsRepo.deleteUiaSession(db, passed.sessionId);
  }

  private required(req: UiaRequest, session: UiaSessionRecord, failure?: { errcode: ErrCode; error: string }): UiaRequiredError {
    return new UiaRequiredError(
      { flows: req.flows.map((stages) => ({ stages })), params: session.params, session: session.sessionId, completed: session.completed },
      failure,
    );
  }

  private async createSession(req: UiaRequest): Promise<UiaSessionRecord> {
    await this.cleanup();
    const params: Record<string, unknown> = {};
    for (const type of new Set(req.flows.flat())) {
      const p = this.stages.get(type)?.params?.();
      if (p !== undefined) params[type] = p; // prototype-safe: stage types of the server's own flows
    }
    const session: UiaSessionRecord = {
      sessionId: randomBytes(18).toString('base64url'),
      createdTs: this.deps.clock.now(),
      userId: req.userId ?? null,
      fingerprint: req.operation,
      completed: [],
      params,
      data: req.clientParams !== undefined && Object.keys(req.clientParams).length > 0 ? { [CLIENT_PARAMS]: req.clientParams } : {},
    };
    await sessionsRepo.insertUiaSession(this.deps.db.knex, session);
    return session;
  }

  private async cleanup(): Promise<void> {
    const now = this.deps.clock.now();
    if (now - this.lastCleanup < CLEANUP_INTERVAL_MS) return;
    this.lastCleanup = now;
    const knex = this.deps.db.knex;
    const expired = await sessionsRepo.deleteExpiredUiaSessions(knex, now - SESSION_LIFETIME_MS);
    for (const data of expired) {
      for (const stage of this.stages.values()) await stage.release?.(knex, data);
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
