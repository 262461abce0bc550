import { MatrixError, forbidden, limitExceeded } from '../errors.js';
import type { RateLimiter } from '../http/rateLimit.js';
import type { Requester } from '../http/route.js';
import type { ServiceDeps } from '../serviceDeps.js';
import * as regTokens from '../storage/repositories/registrationTokens.js';
import { getUser, insertUser, upgradeGuestUser, userExists } from '../storage/repositories/users.js';
import type { DeviceService, OpenedSession } from './deviceService.js';
import type { UserHooks } from './hooks.js';
import { hashPassword, MAX_PASSWORD_LENGTH } from './passwords.js';
import { UiaRequiredError, type UiaPassed, type UserInteractiveAuth } from './uia.js';
import { dict } from '../util/dict.js';
import { registrationTokenValid } from './uiaStages.js';
import { checkLocalpart, describeProblem, generateLocalpart, normalizeUsername, userIdFor } from './usernames.js';
import { inTransaction } from './unitOfWork.js';

// Spec: Client-Server API, "Account registration" (POST /_matrix/client/v3/register and friends).

const REGISTER_OPERATION = 'POST /register';
/** UIA session data: the hash of the password the first request gave, and the account the session created. */
const PASSWORD_HASH = 'passwordHash';
const REGISTERED_USER_ID = 'registeredUserId';

/** The remembered registration parameters, each kept only if of the right type. */
function registerParams(p: Record<string, unknown>): Pick<RegisterRequest, 'username' | 'device_id' | 'initial_device_display_name' | 'inhibit_login' | 'refresh_token'> {
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const bool = (v: unknown) => (typeof v === 'boolean' ? v : undefined);
  return {
    username: str(p.username),
    device_id: str(p.device_id),
    initial_device_display_name: str(p.initial_device_display_name),
    inhibit_login: bool(p.inhibit_login),
    refresh_token: bool(p.refresh_token),
  };
}

export interface RegisterRequest {
  /** `m.login.application_service` when an application service registers one of its users. */
  type?: string;
  auth?: unknown;
  username?: string;
  password?: string;
  device_id?: string;
  initial_device_display_name?: string;
  inhibit_login?: boolean;
  refresh_token?: boolean;
}

export interface RegisterContext {
  /** Spec "Guest access": the guest whose `guest_access_token` came with the request (upgrading it). */
  upgradingGuest?: string | undefined;
  kind: 'user' | 'guest';
  requester: Requester | undefined;
  ip: string;
  userAgent: string | undefined;
  /** The rc_registration bucket this request counts against (the address); undefined when exempt. */
  rateLimitKey: string | undefined;
}

export interface Registered {
  userId: string;
  session?: OpenedSession;
}

export interface NewAccount {
  localpart: string;
  password?: string;
  /** Instead of `password`: a hash made earlier (kept in a registration's UIA session). */
  passwordHash?: string;
  admin?: boolean;
  isGuest?: boolean;
  appserviceId?: string;
  displayname?: string | null;
  /** Log the new account in on this device (omitted: no device, no token). */
  login?: { deviceId?: string; displayName?: string; ip?: string; userAgent?: string; withRefresh: boolean };
  /** Counted as used once the account exists. */
  registrationToken?: string;
}

export class RegistrationService {
  /** rc_registration; set by the composition root when rate limits are on. */
  limiter: RateLimiter | undefined;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly devices: DeviceService,
    private readonly uia: UserInteractiveAuth,
    private readonly hooks: UserHooks,
  ) {}

  private get guestAccessAllowed(): boolean {
    // Synapse's `allow_guest_access`; off by default.
    return this.deps.config.allow_guest_access;
  }

  flows(): string[][] {
    return this.deps.config.registration_requires_token ? [['m.login.registration_token']] : [['m.login.dummy']];
  }

  /** The checks the spec wants before UIA starts: grammar, availability, exclusivity. Returns the localpart. */
  async checkUsername(username: string, appserviceId?: string, upgradingGuest?: string): Promise<string> {
    const localpart = normalizeUsername(username);
    const problem = checkLocalpart(localpart, this.deps.serverName);
    if (problem) throw new MatrixError('M_INVALID_USERNAME', describeProblem(problem), 400);
    const userId = userIdFor(localpart, this.deps.serverName);
    if (this.hooks.isExclusive(userId, appserviceId)) throw new MatrixError('M_EXCLUSIVE', 'This user ID is reserved by an application service', 400);
    if (await userExists(this.deps.db.knex, userId)) {
      if (upgradingGuest === undefined) throw new MatrixError('M_USER_IN_USE', 'User ID already taken.', 400);
      // As Synapse: a taken ID is only given to the guest that holds it (its own guest_access_token).
      if (upgradingGuest !== userId || !(await getUser(this.deps.db.knex, userId))?.isGuest) {
        throw forbidden('Cannot register taken user ID without valid guest credentials for that user.');
      }
    }
    return localpart;
  }

  checkPassword(password: string | undefined): void {
    if (password === undefined) return;
    if (password.length > MAX_PASSWORD_LENGTH) throw new MatrixError('M_BAD_JSON', 'Password too long', 400);
    if (password.length < this.deps.config.password_config.minimum_length) {
      throw new MatrixError('M_WEAK_PASSWORD', 'Password too short', 400);
    }
  }

  /** Spec: "POST /_matrix/client/v3/register". */
  async register(body: RegisterRequest, ctx: RegisterContext): Promise<Registered> {
    // As Synapse: an exhausted limit refuses early, but only a created account spends a token, so the
    // UIA handshake and client probes never count.
    this.checkLimit(ctx, false);
    if (ctx.kind === 'guest') return this.registerGuest(body, ctx);
    if (ctx.requester?.appserviceId !== undefined) return this.registerForAppservice(body, ctx.requester.appserviceId, ctx);
    if (body.type === 'm.login.application_service') {
      throw new MatrixError('M_MISSING_TOKEN', 'Application service registration needs the as_token', 401);
    }
    if (!this.deps.config.enable_registration) throw forbidden('Registration has been disabled');
    const auth = body.auth as { session?: unknown } | undefined;
    const sessionId = typeof auth === 'object' && auth !== null && typeof auth.session === 'string' ? auth.session : undefined;
    const earlier = sessionId !== undefined ? await this.uia.sessionData(sessionId, REGISTER_OPERATION) : undefined;
    const alreadyRegistered = typeof earlier?.[REGISTERED_USER_ID] === 'string' ? (earlier[REGISTERED_USER_ID] as string) : undefined;
    // The session's own account is not "in use" for the request that repeats it (as Synapse's assigned_user_id).
    if (body.username !== undefined && userIdFor(normalizeUsername(body.username), this.deps.serverName) !== alreadyRegistered) {
      await this.checkUsername(body.username, undefined, ctx.upgradingGuest);
    }
    this.checkPassword(body.password);

    // The password never goes into the session; its hash does, so a later request may leave it out (as Synapse).
    const clientParams = dict<unknown>();
    for (const key of ['username', 'device_id', 'initial_device_display_name', 'inhibit_login', 'refresh_token'] as const) {
      if (body[key] !== undefined) clientParams[key] = body[key];
    }
    let passed: UiaPassed;
    try {
      passed = await this.uia.authenticate({ auth: body.auth, flows: this.flows(), operation: REGISTER_OPERATION, clientParams });
    } catch (err) {
      if (err instanceof UiaRequiredError && body.password !== undefined) {
        const data = await this.uia.sessionData(err.body.session, REGISTER_OPERATION);
        if (data && data[PASSWORD_HASH] === undefined) await this.uia.setSessionData(err.body.session, PASSWORD_HASH, await hashPassword(body.password));
      }
      throw err;
    }
    const params = registerParams(passed.clientParams);
    const login = params.inhibit_login
      ? undefined
      : { deviceId: params.device_id, displayName: params.initial_device_display_name, ip: ctx.ip, userAgent: ctx.userAgent, withRefresh: params.refresh_token === true };
    const registeredBefore = passed.data[REGISTERED_USER_ID];
    if (typeof registeredBefore === 'string') {
      // A repeated request of a completed session answers for the same account (registration is idempotent);
      // one naming another account is refused rather than answered with this one.
      if (params.username !== undefined && userIdFor(normalizeUsername(params.username), this.deps.serverName) !== registeredBefore) {
        throw new MatrixError('M_UNKNOWN', 'This session already registered another account', 400);
      }
      return { userId: registeredBefore, ...(login ? { session: await this.devices.openSession({ userId: registeredBefore, ...login }) } : {}) };
    }
    const localpart = params.username !== undefined ? await this.checkUsername(params.username, undefined, ctx.upgradingGuest) : undefined;
    const token = typeof passed.data.registrationToken === 'string' ? passed.data.registrationToken : undefined;
    this.checkLimit(ctx, true);
    const storedHash = passed.data[PASSWORD_HASH];
    const guestId = localpart !== undefined && ctx.upgradingGuest === userIdFor(localpart, this.deps.serverName) ? ctx.upgradingGuest : undefined;
    const registered = guestId !== undefined
      ? await this.upgradeGuest(guestId, body.password !== undefined ? await hashPassword(body.password) : typeof storedHash === 'string' ? storedHash : null, token, login)
      : await this.createAccount({
      localpart: localpart ?? '',
      ...(body.password !== undefined ? { password: body.password } : typeof storedHash === 'string' ? { passwordHash: storedHash } : {}),
      registrationToken: token,
      login,
    });
    // The session stays (until it expires) to answer repeats; the token it held is spent, nothing to release.
    await this.uia.setSessionData(passed.sessionId, 'registrationToken', undefined);
    await this.uia.setSessionData(passed.sessionId, REGISTERED_USER_ID, registered.userId);
    return registered;
  }

  // Spec: Application Service API, "Server admin style permissions": no UIA, no open-registration check;
  // the namespace is enforced through the exclusive-namespace hook.
  private async registerForAppservice(body: RegisterRequest, appserviceId: string, ctx: RegisterContext): Promise<Registered> {
    if (body.type !== 'm.login.application_service') {
      throw new MatrixError('M_UNKNOWN', "Application services must register with type 'm.login.application_service'", 400);
    }
    if (body.username === undefined) throw new MatrixError('M_MISSING_PARAM', "Missing 'username'", 400);
    const localpart = await this.checkUsername(body.username, appserviceId);
    this.checkLimit(ctx, true);
    return this.createAccount({
      localpart,
      appserviceId,
      login: body.inhibit_login
        ? undefined
        : { deviceId: body.device_id, displayName: body.initial_device_display_name, ip: ctx.ip, userAgent: ctx.userAgent, withRefresh: body.refresh_token === true },
    });
  }

  // Spec: "Guest access": everything but initial_device_display_name is ignored; the server picks the device.
  private async registerGuest(body: RegisterRequest, ctx: RegisterContext): Promise<Registered> {
    if (!this.guestAccessAllowed) throw new MatrixError('M_GUEST_ACCESS_FORBIDDEN', 'Guest access is disabled', 403);
    this.checkLimit(ctx, true);
    return this.createAccount({
      localpart: '',
      isGuest: true,
      login: { displayName: body.initial_device_display_name, ip: ctx.ip, userAgent: ctx.userAgent, withRefresh: false },
    });
  }

  /**
   * Spec "Guest access": a guest registering its own localpart (with its guest_access_token) becomes a full
   * user with the same ID, rooms and profile, and a new session.
   */
  private async upgradeGuest(userId: string, passwordHash: string | null, registrationToken: string | undefined, login: NewAccount['login']): Promise<Registered> {
    const result = await inTransaction(this.deps.db.knex, this.deps.logger, async (work) => {
      if (!(await upgradeGuestUser(work.db, userId, passwordHash))) return undefined;
      if (registrationToken !== undefined) await regTokens.completePending(work.db, registrationToken);
      const session = login ? await this.devices.openSessionIn(work, { userId, ...login }) : undefined;
      return { userId, session };
    });
    if (!result) throw new MatrixError('M_USER_IN_USE', 'User ID already taken.', 400);
    // Cached lookups of the guest's tokens still say "guest": drop them.
    this.devices.forgetCachedTokens(userId);
    return result;
  }

  private checkLimit(ctx: RegisterContext, spend: boolean): void {
    if (!this.limiter || ctx.rateLimitKey === undefined) return;
    const wait = spend ? this.limiter.take(ctx.rateLimitKey) : this.limiter.check(ctx.rateLimitKey);
    if (wait > 0) throw limitExceeded(wait);
  }

  /**
   * Creates an account (and optionally its first session) in one unit of work. An empty localpart means
   * "generate one". Throws M_USER_IN_USE when the ID was taken meanwhile.
   */
  async createAccount(account: NewAccount): Promise<Registered> {
    const passwordHash = account.password !== undefined ? await hashPassword(account.password) : (account.passwordHash ?? null);
    const generate = account.localpart === '';
    for (let attempt = 0; ; attempt++) {
      const localpart = generate ? generateLocalpart() : account.localpart;
      const userId = userIdFor(localpart, this.deps.serverName);
      const result = await inTransaction(this.deps.db.knex, this.deps.logger, async (work) => {
        const inserted = await insertUser(work.db, {
          userId,
          passwordHash,
          createdTs: this.deps.clock.now(),
          admin: account.admin ?? false,
          isGuest: account.isGuest ?? false,
          appserviceId: account.appserviceId ?? null,
          displayname: account.displayname === undefined ? localpart : account.displayname,
        });
        if (!inserted) return undefined;
        if (account.registrationToken !== undefined) await regTokens.completePending(work.db, account.registrationToken);
        const session = account.login ? await this.devices.openSessionIn(work, { userId, ...account.login }) : undefined;
        return { userId, session };
      });
      if (result) return result;
      if (!generate || attempt >= 5) throw new MatrixError('M_USER_IN_USE', 'User ID already taken.', 400);
    }
  }

  /** Spec: "GET /_matrix/client/v3/register/available". */
  async available(username: string): Promise<void> {
    if (!this.deps.config.enable_registration) throw forbidden('Registration has been disabled');
    await this.checkUsername(username);
  }

  /** Spec: "GET /_matrix/client/v1/register/m.login.registration_token/validity". */
  async tokenValid(token: string): Promise<boolean> {
    if (!this.deps.config.enable_registration) throw forbidden('Registration is not enabled on this homeserver.');
    return registrationTokenValid(this.deps.db.knex, this.deps.config, token, this.deps.clock.now());
  }
}
