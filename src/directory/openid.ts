import { randomBytes } from 'node:crypto';
import { unknownToken } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { deleteExpiredOpenIdTokens, insertOpenIdToken, openIdTokenOwner } from '../storage/repositories/openid.js';
import { getUser } from '../storage/repositories/users.js';
import { hashToken } from '../users/tokens.js';

// Spec: Client-Server API "OpenID" and Server-Server API "OpenID": a token that proves to another service
// who the user is, good for nothing but GET /_matrix/federation/v1/openid/userinfo.

const LIFETIME_MS = 60 * 60 * 1000;

export interface OpenIdToken {
  access_token: string;
  token_type: 'Bearer';
  matrix_server_name: string;
  expires_in: number;
}

export class OpenIdService {
  constructor(private readonly deps: ServiceDeps) {}

  async issue(userId: string): Promise<OpenIdToken> {
    const token = randomBytes(24).toString('base64url');
    const now = this.deps.clock.now();
    await deleteExpiredOpenIdTokens(this.deps.db.knex, now);
    await insertOpenIdToken(this.deps.db.knex, hashToken(token), userId, now + LIFETIME_MS);
    return { access_token: token, token_type: 'Bearer', matrix_server_name: this.deps.serverName, expires_in: LIFETIME_MS / 1000 };
  }

  /** The user a token was issued to; 401 M_UNKNOWN_TOKEN when unknown, expired, or the account is gone. */
  async userInfo(token: string): Promise<{ sub: string }> {
    const userId = await openIdTokenOwner(this.deps.db.knex, hashToken(token), this.deps.clock.now());
    if (!userId) throw unknownToken('Access token unknown or expired');
    const user = await getUser(this.deps.db.knex, userId);
    if (!user || user.deactivated) throw unknownToken('Access token unknown or expired');
    return { sub: userId };
  }
}
