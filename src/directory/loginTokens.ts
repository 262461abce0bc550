import { randomBytes } from 'node:crypto';
import { MatrixError, forbidden } from '../errors.js';
import { parseDuration } from '../config/schema.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { consumeLoginToken, deleteExpiredLoginTokens, insertLoginToken } from '../storage/repositories/loginTokens.js';
import { getUser } from '../storage/repositories/users.js';
import { hashToken } from '../users/tokens.js';
import type { LoginRequest } from '../users/loginService.js';

// Spec: "POST /_matrix/client/v1/login/get_token" and the `m.login.token` login type. Tokens are single-use
// and expire (config `login_via_existing_session.token_timeout`, default 5 minutes). Other features that
// log a user in out of band (SSO, an admin "log in as") issue tokens here too.

export const LOGIN_TOKEN_PREFIX = 'skl_';

export class LoginTokenService {
  constructor(private readonly deps: ServiceDeps) {}

  get lifetimeMs(): number {
    return parseDuration(this.deps.config.login_via_existing_session.token_timeout);
  }

  async issue(userId: string, lifetimeMs = this.lifetimeMs): Promise<{ token: string; expiresInMs: number }> {
    const token = LOGIN_TOKEN_PREFIX + randomBytes(24).toString('base64url');
    const now = this.deps.clock.now();
    await deleteExpiredLoginTokens(this.deps.db.knex, now);
    await insertLoginToken(this.deps.db.knex, hashToken(token), userId, now, now + lifetimeMs);
    return { token, expiresInMs: lifetimeMs };
  }

  /** The `m.login.token` handler for LoginService: uses the token up and returns its user. */
  async login(body: LoginRequest): Promise<string> {
    const token = body.token;
    if (typeof token !== 'string' || token === '') throw new MatrixError('M_MISSING_PARAM', "Missing 'token'");
    const userId = await consumeLoginToken(this.deps.db.knex, hashToken(token), this.deps.clock.now());
    if (!userId) throw forbidden('Invalid login token');
    const user = await getUser(this.deps.db.knex, userId);
    if (!user) throw forbidden('Invalid login token');
    if (user.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 'This account has been deactivated');
    return userId;
  }
}
