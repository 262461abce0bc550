import { MatrixError, invalidParam, notFound } from '../errors.js';
import type { DeactivationService } from '../deactivation/deactivationService.js';
import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { lastSeenOf, listUsers, markReactivated, setAdminFlag, type AdminUserRow, type UserListQuery } from '../storage/repositories/adminUsers.js';
import { setProfileField } from '../storage/repositories/profiles.js';
import { setPasswordHash } from '../storage/repositories/users.js';
import { isStorableString } from '../rooms/eventLimits.js';
import { hashPassword } from './passwords.js';
import { inTransaction } from './unitOfWork.js';
import { checkLocalpart, describeProblem } from './usernames.js';
import type { UserService } from './userService.js';

// Synapse admin API, "User Admin API": what an admin reads and changes about local accounts.

export interface AdminUserDeps extends ServiceDeps {
  users: UserService;
  rooms: RoomService;
  deactivation: DeactivationService;
}

/** Body of `PUT /_synapse/admin/v2/users/{userId}` after validation. */
export interface UserChanges {
  password?: string | undefined;
  logoutDevices: boolean;
  displayname?: string | undefined;
  avatarUrl?: string | undefined;
  admin?: boolean | undefined;
  deactivated?: boolean | undefined;
}

/** A user object of the list (creation_ts in ms, as Synapse's list). */
export function listEntry(u: AdminUserRow): Record<string, unknown> {
  return {
    name: u.userId,
    is_guest: u.isGuest,
    admin: u.admin,
    user_type: null,
    deactivated: u.deactivated,
    erased: u.erased,
    shadow_banned: false,
    displayname: u.displayname,
    avatar_url: u.avatarUrl,
    creation_ts: u.createdTs,
    last_seen_ts: u.lastSeenTs,
    locked: false,
    approved: true,
  };
}

const MAX_PROFILE_FIELD = 1024;

export class AdminUsers {
  constructor(private readonly deps: AdminUserDeps) {}

  list(q: Omit<UserListQuery, 'serverName'>) {
    return listUsers(this.deps.db.knex, { ...q, serverName: this.deps.serverName });
  }

  /** Synapse "Query User Account": creation_ts in seconds here, as Synapse. */
  async details(userId: string): Promise<Record<string, unknown>> {
    const user = await this.deps.users.getUser(userId);
    if (!user) throw notFound('User not found');
    return {
      name: user.userId,
      displayname: user.displayname,
      threepids: [],
      avatar_url: user.avatarUrl,
      is_guest: user.isGuest,
      admin: user.admin,
      deactivated: user.deactivated,
      erased: user.erased,
      shadow_banned: false,
      creation_ts: Math.floor(user.createdTs / 1000),
      last_seen_ts: await lastSeenOf(this.deps.db.knex, userId),
      appservice_id: user.appserviceId,
      consent_server_notice_sent: null,
      consent_version: null,
      consent_ts: null,
      external_ids: [],
      user_type: null,
      locked: false,
      suspended: false,
      approved: true,
    };
  }

  /** Synapse "Create or modify account": true when the account was created. */
  async upsert(userId: string, changes: UserChanges): Promise<boolean> {
    this.checkProfileValue('displayname', changes.displayname);
    this.checkProfileValue('avatar_url', changes.avatarUrl);
    if (changes.avatarUrl !== undefined && changes.avatarUrl !== '' && !changes.avatarUrl.startsWith('mxc://')) throw invalidParam('avatar_url must be an mxc:// URI');
    if (changes.password !== undefined) {
      if (!this.deps.config.password_config.enabled) throw new MatrixError('M_FORBIDDEN', 'Password authentication is disabled', 400);
      this.deps.users.registration.checkPassword(changes.password);
    }
    const existing = await this.deps.users.getUser(userId);
    if (!existing) {
      const localpart = userId.slice(1, userId.indexOf(':'));
      const problem = checkLocalpart(localpart, this.deps.serverName);
      if (problem) throw new MatrixError('M_INVALID_USERNAME', describeProblem(problem));
      await this.deps.users.registration.createAccount({
        localpart,
        ...(changes.password !== undefined ? { password: changes.password } : {}),
        admin: changes.admin ?? false,
        displayname: changes.displayname || localpart,
      });
      if (changes.avatarUrl) await setProfileField(this.deps.db.knex, userId, 'avatar_url', changes.avatarUrl);
      if (changes.deactivated) await this.deps.deactivation.deactivate(userId, false);
      return true;
    }
    if (changes.password !== undefined) {
      const hash = await hashPassword(changes.password);
      await inTransaction(this.deps.db.knex, this.deps.logger, async (work) => {
        await setPasswordHash(work.db, userId, hash);
        if (changes.logoutDevices) await this.deps.users.devices.deleteAllIn(work, userId);
      });
    }
    let profileChanged = false;
    if (changes.displayname !== undefined && changes.displayname !== (existing.displayname ?? '')) {
      await setProfileField(this.deps.db.knex, userId, 'displayname', changes.displayname === '' ? null : changes.displayname);
      profileChanged = true;
    }
    if (changes.avatarUrl !== undefined && changes.avatarUrl !== (existing.avatarUrl ?? '')) {
      await setProfileField(this.deps.db.knex, userId, 'avatar_url', changes.avatarUrl === '' ? null : changes.avatarUrl);
      profileChanged = true;
    }
    if (profileChanged && !existing.deactivated) await this.deps.rooms.propagateProfile(userId);
    if (changes.admin !== undefined && changes.admin !== existing.admin) await setAdminFlag(this.deps.db.knex, userId, changes.admin);
    if (changes.deactivated === true && !existing.deactivated) await this.deps.deactivation.deactivate(userId, false);
    if (changes.deactivated === false && existing.deactivated) {
      // As Synapse: a reactivated account needs a password to log in again, unless passwords are off.
      if (changes.password === undefined && existing.passwordHash === null && this.deps.config.password_config.enabled) {
        throw invalidParam('Must provide a password to re-activate an account.');
      }
      await markReactivated(this.deps.db.knex, userId);
    }
    return false;
  }

  async setAdmin(userId: string, admin: boolean): Promise<void> {
    await setAdminFlag(this.deps.db.knex, userId, admin);
  }

  /** Synapse "Reset password": all devices are logged out unless `logoutDevices` is false. */
  async resetPassword(userId: string, newPassword: string, logoutDevices: boolean): Promise<void> {
    if (!this.deps.config.password_config.enabled) throw new MatrixError('M_FORBIDDEN', 'Password authentication is disabled', 400);
    this.deps.users.registration.checkPassword(newPassword);
    const hash = await hashPassword(newPassword);
    await inTransaction(this.deps.db.knex, this.deps.logger, async (work) => {
      await setPasswordHash(work.db, userId, hash);
      if (logoutDevices) await this.deps.users.devices.deleteAllIn(work, userId);
    });
  }

  private checkProfileValue(field: string, value: string | undefined): void {
    if (value === undefined) return;
    if (value.length > MAX_PROFILE_FIELD) throw new MatrixError('M_TOO_LARGE', `${field} is too long`, 400);
    if (!isStorableString(value)) throw new MatrixError('M_BAD_JSON', `${field} must be valid UTF-8 without U+0000`);
  }
}
