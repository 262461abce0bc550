import { forbidden } from '../errors.js';
import type { Requester } from '../http/route.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { putDeactivationJob } from '../storage/repositories/deactivationJobs.js';
import { markDeactivated, setPasswordHash } from '../storage/repositories/users.js';
import type { DeviceService } from './deviceService.js';
import type { UserHooks } from './hooks.js';
import { hashPassword } from './passwords.js';
import type { RegistrationService } from './registration.js';
import type { UiaPassed, UserInteractiveAuth } from './uia.js';
import { inTransaction } from './unitOfWork.js';

// Spec: Client-Server API, "Account management": password changes and deactivation.

/** Runs a queued deactivation job (src/deactivation), set by the composition root. */
export interface DeactivationRunner {
  run(userId: string): Promise<void>;
}

// The request waits this long for the job (leaving rooms, erasure); a longer one finishes in the background.
const DEACTIVATION_WAIT_MS = 20_000;

export class AccountService {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly devices: DeviceService,
    private readonly registration: RegistrationService,
    private readonly uia: UserInteractiveAuth,
    private readonly hooks: UserHooks,
  ) {}

  /** Set by homeserver.ts; without it (unit wiring) the hooks run directly. */
  deactivation: DeactivationRunner | undefined;

  /**
   * UIA for an operation by a logged-in user: re-enter the password. Application services act for
   * their users without it. Other services (cross-signing upload) call this too.
   */
  async requireReauth(requester: Requester, auth: unknown, operation: string): Promise<UiaPassed | undefined> {
    if (requester.appserviceId !== undefined) return undefined;
    return this.uia.authenticate({ auth, flows: [['m.login.password']], operation, userId: requester.userId });
  }

  async finishReauth(passed: UiaPassed | undefined): Promise<void> {
    if (passed) await this.uia.finish(passed);
  }

  /** Spec: "POST /_matrix/client/v3/account/password". */
  async changePassword(requester: Requester, body: { new_password: string; logout_devices?: boolean; auth?: unknown }): Promise<void> {
    if (!this.deps.config.password_config.enabled) throw forbidden('Password changes are disabled');
    this.registration.checkPassword(body.new_password);
    const passed = await this.requireReauth(requester, body.auth, 'POST /account/password');
    const hash = await hashPassword(body.new_password);
    await inTransaction(this.deps.db.knex, this.deps.logger, async (work) => {
      await setPasswordHash(work.db, requester.userId, hash);
      // Every other device is logged out; the one that asked keeps its session.
      if (body.logout_devices ?? true) {
        await this.devices.deleteAllIn(work, requester.userId, { deviceId: requester.deviceId, tokenId: requester.tokenId });
      }
    });
    await this.finishReauth(passed);
  }

  /** Spec: "POST /_matrix/client/v3/account/deactivate". */
  async deactivate(requester: Requester, body: { auth?: unknown; erase?: boolean }): Promise<void> {
    const passed = await this.requireReauth(requester, body.auth, 'POST /account/deactivate');
    const erase = body.erase ?? false;
    await inTransaction(this.deps.db.knex, this.deps.logger, async (work) => {
      await markDeactivated(work.db, requester.userId, erase);
      await this.devices.deleteAllIn(work, requester.userId);
      // The rest (rooms, data, erasure) is a durable job: it resumes at start-up if the process dies.
      await putDeactivationJob(work.db, requester.userId, erase, this.deps.clock.now());
      work.afterCommit(async () => {
        const runner = this.deactivation;
        if (!runner) return this.hooks.run('onDeactivated', this.hooks.onDeactivated, requester.userId, { erase });
        let timer: NodeJS.Timeout | undefined;
        const waited = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, DEACTIVATION_WAIT_MS);
          timer.unref();
        });
        await Promise.race([runner.run(requester.userId), waited]);
        clearTimeout(timer);
      });
    });
    await this.finishReauth(passed);
  }
}
