import { MatrixError, forbidden, limitExceeded } from '../errors.js';
import { RateLimiter } from '../http/rateLimit.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { getUser, setPasswordHash, type UserRecord } from '../storage/repositories/users.js';
import type { DeviceService, OpenedSession } from './deviceService.js';
import { StageFailed } from './uia.js';
import { identifiedUser } from './uiaStages.js';
import { hashPassword, needsRehash, verifyPassword, MAX_PASSWORD_LENGTH } from './passwords.js';

// Spec: Client-Server API, "Login" (GET/POST /_matrix/client/v3/login).

export interface LoginRequest {
  type: string;
  device_id?: string;
  initial_device_display_name?: string;
  refresh_token?: boolean;
  [key: string]: unknown;
}

export interface LoginContext {
  ip: string;
  userAgent: string | undefined;
  /** The access token sent with the login request, if any (m.login.application_service: the as_token). */
  accessToken?: string | undefined;
}

/** Checks a login request of one type and returns the local user it logs in. */
export type LoginTypeHandler = (body: LoginRequest, ctx: LoginContext) => Promise<string>;

export interface LoginResult extends OpenedSession {
  userId: string;
}

export class LoginService {
  private readonly types = new Map<string, LoginTypeHandler>();
  private dummyHash: Promise<string> | undefined;
  /** rc_login.account: successful logins per account, from any address. */
  private readonly accountLimiter: RateLimiter | undefined;
  /** rc_login.failed_attempts: wrong passwords per account, from any address. */
  private readonly failedLimiter: RateLimiter | undefined;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly devices: DeviceService,
  ) {
    if (deps.config.password_config.enabled) this.types.set('m.login.password', (body) => this.checkPassword(body));
    if (deps.config.rc_enabled) {
      const now = () => deps.clock.now();
      this.accountLimiter = new RateLimiter(deps.config.rc_login.account, now);
      this.failedLimiter = new RateLimiter(deps.config.rc_login.failed_attempts, now);
    }
  }

  /** Adds a login type (m.login.token, m.login.application_service …); it appears in GET /login. */
  private readonly flowFields = new Map<string, Record<string, unknown>>();

  /** Adds a login type; `flowFields` are advertised with it in GET /login (e.g. get_login_token). */
  addLoginType(type: string, handler: LoginTypeHandler, flowFields: Record<string, unknown> = {}): void {
    this.types.set(type, handler);
    this.flowFields.set(type, flowFields);
  }

  flows(): Array<{ type: string } & Record<string, unknown>> {
    return [...this.types.keys()].map((type) => ({ type, ...this.flowFields.get(type) }));
  }

  async login(body: LoginRequest, ctx: LoginContext): Promise<LoginResult> {
    const handler = this.types.get(body.type);
    if (!handler) throw new MatrixError('M_UNKNOWN', 'Unknown login type', 400);
    const userId = await handler(body, ctx);
    // As Synapse: application services log their users in without the per-account limit.
    if (this.accountLimiter && body.type !== 'm.login.application_service') {
      const wait = this.accountLimiter.take(userId.toLowerCase());
      if (wait > 0) throw limitExceeded(wait);
    }
    const session = await this.devices.openSession({
      userId,
      deviceId: body.device_id,
      displayName: body.initial_device_display_name,
      ip: ctx.ip,
      userAgent: ctx.userAgent,
      withRefresh: body.refresh_token === true,
    });
    return { ...session, userId };
  }

  private async checkPassword(body: LoginRequest): Promise<string> {
    let named: string | undefined;
    try {
      named = identifiedUser(body, this.deps.serverName);
    } catch (err) {
      if (err instanceof StageFailed) throw new MatrixError(err.errcode, err.message, err.errcode === 'M_FORBIDDEN' ? 403 : 400);
      throw err;
    }
    if (body.identifier === undefined && body.user === undefined) {
      if (body.medium !== undefined || body.address !== undefined) throw new MatrixError('M_UNKNOWN', 'Third-party identifiers are not supported', 400);
      throw new MatrixError('M_MISSING_PARAM', "Missing 'identifier'");
    }
    const password = body.password;
    if (typeof password !== 'string') throw new MatrixError('M_BAD_JSON', "Missing or invalid 'password'");
    if (password.length > MAX_PASSWORD_LENGTH) throw forbidden('Invalid username or password');

    // One key per account however it is spelled (localpart or full ID, any case), as findUser matches.
    const limitKey = named?.toLowerCase();
    if (this.failedLimiter && limitKey !== undefined) {
      const wait = this.failedLimiter.check(limitKey);
      if (wait > 0) throw limitExceeded(wait);
    }
    const failed = (): MatrixError => {
      if (this.failedLimiter && limitKey !== undefined) this.failedLimiter.take(limitKey);
      return forbidden('Invalid username or password');
    };

    const user = named !== undefined ? await this.findUser(named) : undefined;
    if (!user) {
      await verifyPassword(password, await this.dummy()); // same cost whether or not the user exists
      throw failed();
    }
    if (user.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 'This account has been deactivated');
    if (!user.passwordHash || !(await verifyPassword(password, user.passwordHash))) throw failed();
    if (needsRehash(user.passwordHash)) await setPasswordHash(this.deps.db.knex, user.userId, await hashPassword(password));
    return user.userId;
  }

  // User IDs are matched exactly, then with the localpart lowercased (registration lowercases usernames).
  private async findUser(userId: string): Promise<UserRecord | undefined> {
    const exact = await getUser(this.deps.db.knex, userId);
    if (exact) return exact;
    const colon = userId.indexOf(':');
    const lowered = userId.slice(0, colon).toLowerCase() + userId.slice(colon);
    return lowered !== userId ? getUser(this.deps.db.knex, lowered) : undefined;
  }

  private dummy(): Promise<string> {
    this.dummyHash ??= hashPassword('not a real password');
    return this.dummyHash;
  }
}
