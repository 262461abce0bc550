import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { MatrixError } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { consumeNonce, deleteNoncesBefore, insertNonce } from '../storage/repositories/registrationNonces.js';
import type { Registered, RegistrationService } from './registration.js';
import { MAX_PASSWORD_LENGTH } from './passwords.js';

// Synapse's admin API "Shared-Secret Registration" (/_synapse/admin/v1/register), so existing tooling
// (register_new_matrix_user, bots' setup scripts) works unchanged. Errors mirror Synapse's.

const NONCE_LIFETIME_MS = 60_000;

const fail = (status: number, error: string, errcode: 'M_UNKNOWN' | 'M_BAD_JSON' | 'M_FORBIDDEN' = 'M_UNKNOWN') =>
  new MatrixError(errcode, error, status);

/** HMAC-SHA1 over `nonce\0username\0password\0admin|notadmin[\0user_type]`, hex. */
export function registrationMac(secret: string, f: { nonce: string; username: string; password: string; admin: boolean; userType?: string }): string {
  const mac = createHmac('sha1', Buffer.from(secret, 'utf8'));
  mac.update(f.nonce).update('\u0000').update(f.username).update('\u0000').update(f.password).update('\u0000');
  mac.update(f.admin ? 'admin' : 'notadmin');
  if (f.userType !== undefined) mac.update('\u0000').update(f.userType);
  return mac.digest('hex');
}

export class SharedSecretRegistration {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly registration: RegistrationService,
  ) {}

  private secret(): string {
    const secret = this.deps.config.registration_shared_secret;
    if (!secret) throw fail(400, 'Shared secret registration is not enabled');
    return secret;
  }

  async nonce(): Promise<string> {
    this.secret();
    const now = this.deps.clock.now();
    await deleteNoncesBefore(this.deps.db.knex, now - NONCE_LIFETIME_MS);
    const nonce = randomBytes(32).toString('hex');
    await insertNonce(this.deps.db.knex, nonce, now);
    return nonce;
  }

  async register(body: Record<string, unknown>): Promise<Registered & { admin: boolean }> {
    const secret = this.secret();
    if (typeof body.nonce !== 'string') throw fail(400, 'nonce must be specified', 'M_BAD_JSON');
    // The nonce is spent by this attempt whatever happens next.
    if (!(await consumeNonce(this.deps.db.knex, body.nonce, this.deps.clock.now() - NONCE_LIFETIME_MS))) {
      throw fail(400, 'unrecognised nonce');
    }
    if (body.username === undefined) throw fail(400, 'username must be specified', 'M_BAD_JSON');
    const username = body.username;
    if (typeof username !== 'string' || username.length > 512 || username.includes('\u0000')) throw fail(400, 'Invalid username');
    if (body.password === undefined) throw fail(400, 'password must be specified', 'M_BAD_JSON');
    const password = body.password;
    if (typeof password !== 'string' || password.length > MAX_PASSWORD_LENGTH || password.includes('\u0000')) throw fail(400, 'Invalid password');
    const admin = body.admin ?? false;
    if (typeof admin !== 'boolean') throw fail(400, 'Admin param must be a boolean');
    const userType = body.user_type;
    if (userType !== undefined && userType !== null && typeof userType !== 'string') throw fail(400, 'Invalid user type');
    const displayname = body.displayname;
    if (displayname !== undefined && displayname !== null && typeof displayname !== 'string') throw fail(400, 'Invalid displayname');
    if (typeof body.mac !== 'string') throw fail(400, 'mac must be specified', 'M_BAD_JSON');

    const want = Buffer.from(registrationMac(secret, { nonce: body.nonce, username, password, admin, userType: userType ?? undefined }), 'utf8');
    const got = Buffer.from(body.mac, 'utf8');
    if (want.length !== got.length || !timingSafeEqual(want, got)) throw fail(403, 'HMAC incorrect', 'M_FORBIDDEN');

    const localpart = await this.registration.checkUsername(username);
    this.registration.checkPassword(password);
    const registered = await this.registration.createAccount({
      localpart,
      password,
      admin,
      displayname: displayname ?? undefined,
      login: { withRefresh: false },
    });
    return { ...registered, admin };
  }
}
