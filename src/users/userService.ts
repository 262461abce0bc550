import { MatrixError } from '../errors.js';
import type { Requester } from '../http/route.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { getUser, type UserRecord } from '../storage/repositories/users.js';
import type { DeviceRecord } from '../storage/repositories/devices.js';
import { AccessTokens } from './accessTokens.js';
import { AccountService } from './accountService.js';
import { DeviceService } from './deviceService.js';
import { UserHooks } from './hooks.js';
import { LoginService } from './loginService.js';
import { RegistrationService } from './registration.js';
import { SharedSecretRegistration } from './sharedSecret.js';
import { UserInteractiveAuth } from './uia.js';
import { dummyStage, passwordStage, registrationTokenStage } from './uiaStages.js';
import { checkLocalpart, describeProblem, normalizeUsername, userIdFor } from './usernames.js';

export type { UserRecord } from '../storage/repositories/users.js';
export type { DeviceRecord } from '../storage/repositories/devices.js';

/**
 * Accounts, devices, access tokens and user-interactive auth. The parts are exposed for the routes;
 * other services use the methods and the hook lists on `hooks`.
 */
export class UserService {
  readonly hooks: UserHooks;
  readonly tokens: AccessTokens;
  readonly devices: DeviceService;
  readonly uia: UserInteractiveAuth;
  readonly login: LoginService;
  readonly registration: RegistrationService;
  readonly account: AccountService;
  readonly sharedSecret: SharedSecretRegistration;

  constructor(private readonly deps: ServiceDeps) {
    this.hooks = new UserHooks(deps.logger);
    this.tokens = new AccessTokens(deps, this.hooks);
    this.devices = new DeviceService(deps, this.tokens, this.hooks);
    this.uia = new UserInteractiveAuth(deps);
    this.uia.addStage(dummyStage);
    this.uia.addStage(passwordStage(deps.serverName));
    this.uia.addStage(registrationTokenStage(deps.config, () => deps.clock.now()));
    this.login = new LoginService(deps, this.devices);
    this.registration = new RegistrationService(deps, this.devices, this.uia, this.hooks);
    this.account = new AccountService(deps, this.devices, this.registration, this.uia, this.hooks);
    this.sharedSecret = new SharedSecretRegistration(deps, this.registration);
  }

  /** Subscribers: E2EE removes device keys; the rooms code makes deactivated users leave. */
  get onDevicesDeleted() {
    return this.hooks.onDevicesDeleted;
  }

  get onDeactivated() {
    return this.hooks.onDeactivated;
  }

  /** Resolves an access token to its requester or throws 401 M_UNKNOWN_TOKEN (used by the HTTP layer). */
  authenticate(token: string, ctx: { ip: string; userAgent: string | undefined; query: Record<string, unknown>; path?: string }): Promise<Requester> {
    return this.tokens.authenticate(token, ctx);
  }

  /** `skjol register-user`: creates a local account with a password, no device. */
  async createAccountFromCli(localpart: string, password: string, admin: boolean): Promise<string> {
    const normalized = normalizeUsername(localpart.replace(/^@/, '').replace(/:.*$/, ''));
    const problem = checkLocalpart(normalized, this.deps.serverName);
    if (problem) throw new MatrixError('M_INVALID_USERNAME', describeProblem(problem));
    const { userId } = await this.registration.createAccount({ localpart: normalized, password, admin });
    return userId;
  }

  getUser(userId: string): Promise<UserRecord | undefined> {
    return getUser(this.deps.db.knex, userId);
  }

  /** True for a local account that exists and is not deactivated. */
  async isActiveUser(userId: string): Promise<boolean> {
    const user = await this.getUser(userId);
    return user !== undefined && !user.deactivated;
  }

  async isAdmin(userId: string): Promise<boolean> {
    return (await this.getUser(userId))?.admin ?? false;
  }

  isLocalUserId(userId: string): boolean {
    return userId.endsWith(`:${this.deps.serverName}`) && userId.startsWith('@');
  }

  localUserId(localpart: string): string {
    return userIdFor(localpart, this.deps.serverName);
  }

  listDevices(userId: string): Promise<DeviceRecord[]> {
    return this.devices.list(userId);
  }

  getDevice(userId: string, deviceId: string): Promise<DeviceRecord | undefined> {
    return this.devices.get(userId, deviceId);
  }

  /** Spec: "DELETE /devices/{deviceId}" and "POST /delete_devices": UIA, then devices and tokens go. */
  async deleteDevicesWithAuth(requester: Requester, deviceIds: readonly string[], auth: unknown, operation: string): Promise<void> {
    const passed = await this.account.requireReauth(requester, auth, operation);
    await this.devices.delete(requester.userId, deviceIds);
    await this.account.finishReauth(passed);
  }

  /** UIA with the password stage, for other endpoints that need it (e.g. cross-signing key upload). */
  requireReauth(requester: Requester, auth: unknown, operation: string) {
    return this.account.requireReauth(requester, auth, operation);
  }

  /** Completes a UIA session once the operation it guarded has succeeded. */
  finishReauth(passed: Awaited<ReturnType<UserService['requireReauth']>>): Promise<void> {
    return this.account.finishReauth(passed);
  }
}
