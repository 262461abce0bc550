import type { HomeserverConfig } from '../config/schema.js';
import type { Db } from '../storage/database.js';
import * as regTokens from '../storage/repositories/registrationTokens.js';
import { getUser } from '../storage/repositories/users.js';
import { StageFailed, type StageContext, type UiaStage } from './uia.js';
import { verifyPassword } from './passwords.js';
import { parseLoginUser } from './usernames.js';

// Spec: "Authentication types" — the UIA stages this server offers.

/** Spec: "Dummy Auth" (m.login.dummy). */
export const dummyStage: UiaStage = {
  type: 'm.login.dummy',
  async check() {},
};

/** The user a password-style auth dict names: `identifier` (m.id.user) or the legacy top-level `user`. */
export function identifiedUser(auth: Record<string, unknown>, serverName: string): string | undefined {
  const identifier = auth.identifier;
  if (identifier !== undefined) {
    if (typeof identifier !== 'object' || identifier === null) throw new StageFailed('M_BAD_JSON', 'Invalid identifier');
    const id = identifier as Record<string, unknown>;
    if (id.type !== 'm.id.user') throw new StageFailed('M_UNKNOWN', 'Unsupported identifier type');
    if (typeof id.user !== 'string') throw new StageFailed('M_BAD_JSON', "Identifier is missing 'user'");
    return parseLoginUser(id.user, serverName);
  }
  if (typeof auth.user === 'string') return parseLoginUser(auth.user, serverName);
  return undefined;
}

/** Spec: "Password-based" (m.login.password): re-checks the password of the user acting. */
export function passwordStage(serverName: string): UiaStage {
  return {
    type: 'm.login.password',
    async check(auth: Record<string, unknown>, ctx: StageContext) {
      if (ctx.userId === undefined) throw new StageFailed('M_FORBIDDEN', 'Password authentication is not available here');
      const named = identifiedUser(auth, serverName);
      if (named !== undefined && named.toLowerCase() !== ctx.userId.toLowerCase()) {
        // Someone else's credentials never authorise this user's operation (403 as Synapse, not a retry).
        throw new StageFailed('M_FORBIDDEN', 'Requested user ID does not match the authenticated user', true);
      }
      if (typeof auth.password !== 'string') throw new StageFailed('M_BAD_JSON', "Missing 'password'");
      const user = await getUser(ctx.db, ctx.userId);
      const ok = user?.passwordHash ? await verifyPassword(auth.password, user.passwordHash) : false;
      if (!ok) throw new StageFailed('M_FORBIDDEN', 'Invalid password');
    },
  };
}

/** Whether a registration token may be used now: configured tokens always, stored ones within limits. */
export async function registrationTokenValid(db: Db, config: HomeserverConfig, token: string, now: number): Promise<boolean> {
  if (config.registration_tokens.includes(token)) return true;
  const row = await regTokens.getRegistrationToken(db, token);
  return row !== undefined && regTokens.registrationTokenUsable(row, now);
}

/** Spec: "Token-authenticated registration" (m.login.registration_token). */
export function registrationTokenStage(config: HomeserverConfig, now: () => number): UiaStage {
  return {
    type: 'm.login.registration_token',
    async check(auth, ctx) {
      const token = auth.token;
      if (typeof token !== 'string' || token.length === 0 || token.length > 64) {
        throw new StageFailed('M_BAD_JSON', "Missing or invalid 'token'");
      }
      if (!(await registrationTokenValid(ctx.db, config, token, now()))) {
        throw new StageFailed('M_FORBIDDEN', 'Invalid registration token');
      }
      // A stored token counts as pending until the registration completes (or the session expires).
      if (!config.registration_tokens.includes(token)) {
        await regTokens.addPending(ctx.db, token);
        ctx.data.registrationToken = token;
      }
    },
    async release(db, data) {
      if (typeof data.registrationToken === 'string') await regTokens.releasePending(db, data.registrationToken);
    },
  };
}
