import type { Knex } from 'knex';
import type { ServiceDeps } from '../serviceDeps.js';
import type { Db } from '../storage/database.js';
import * as e2eeRepo from '../storage/repositories/e2ee.js';
import { roomsForUser, usersSharingRooms } from '../storage/repositories/state.js';
import { anyMembershipChange, membershipChangesInRooms } from '../storage/repositories/e2eeSync.js';

export interface DeviceListDelta {
  changed: string[];
  left: string[];
}

/**
 * Who must re-fetch whose device keys. Most "unable to decrypt" reports come from this bookkeeping, so every
 * rule of spec "Tracking the device list for a user" lives here in one place.
 */
export class DeviceListService {
  constructor(private readonly deps: ServiceDeps) {}

  /** Records a change of `userId`'s devices or cross-signing keys inside the caller's write transaction. */
  async recordChange(trx: Knex.Transaction, userId: string): Promise<void> {
    await e2eeRepo.recordDeviceListChange(trx, userId);
  }

  /**
   * Records a change of `userId`'s keys that only `viewer` is told of (spec "Cross-signing": a user-signing
   * key or a signature `viewer` made); wake `viewer` with `notifyViewer` after commit. Never federated.
   */
  async recordChangeFor(trx: Knex.Transaction, viewer: string, userId: string): Promise<void> {
    await e2eeRepo.recordDeviceListChange(trx, userId, viewer);
  }

  notifyViewer(viewer: string): void {
    this.deps.notifier.notifyUsers([viewer]);
  }

  /** Called after every committed change of a user's devices or keys (federation announces local ones). */
  readonly onChanged: Array<(userId: string) => void> = [];

  /** After commit: wakes everyone who shares a room with `userId`, and the user's own devices. */
  async notifyChange(userId: string): Promise<void> {
    const users = await usersSharingRooms(this.deps.db.knex, userId);
    this.deps.notifier.notifyUsers([userId, ...users]);
    for (const listener of this.onChanged) listener(userId);
  }

  /** Records and publishes a change in its own transaction. */
  async changed(userId: string): Promise<void> {
    await this.deps.db.write((trx) => this.recordChange(trx, userId));
    await this.notifyChange(userId);
  }

  latest(): Promise<number> {
    return e2eeRepo.maxDeviceListStream(this.deps.db.knex);
  }

  /**
   * `changed`: users who share a room with `userId` now and whose keys changed in the device-list range, or
   * who newly share a room in the timeline range. `left`: users who no longer share any room.
   */
  async delta(
    userId: string,
    from: { deviceLists: number; timeline: number },
    to: { deviceLists: number; timeline: number },
  ): Promise<DeviceListDelta> {
    const db = this.deps.db.knex;
    const moved = to.deviceLists > from.deviceLists;
    const keyChanges = moved ? await e2eeRepo.usersWithDeviceChanges(db, from.deviceLists, to.deviceLists) : [];
    const ownChanges = moved ? await e2eeRepo.usersWithDeviceChangesFor(db, userId, from.deviceLists, to.deviceLists) : [];
    const memberChanges = to.timeline > from.timeline && (await anyMembershipChange(db, from.timeline, to.timeline));
    // The common incremental sync: nobody changed keys or membership, so nothing to work out.
    if (!keyChanges.length && !ownChanges.length && !memberChanges) return { changed: [], left: [] };
    const sharing = new Set(await usersSharingRooms(db, userId));
    sharing.add(userId);
    // Keys `userId` signed are their business whether or not they share a room with the owner.
    const changed = new Set<string>([...keyChanges.filter((u) => sharing.has(u)), ...ownChanges]);
    const left = new Set<string>();
    if (memberChanges) await this.membershipDelta(db, userId, from.timeline, to.timeline, sharing, changed, left);
    for (const u of changed) left.delete(u);
    return { changed: [...changed].sort(), left: [...left].sort() };
  }

  private async membershipDelta(
    db: Db,
    userId: string,
    from: number,
    to: number,
    sharing: Set<string>,
    changed: Set<string>,
    left: Set<string>,
  ): Promise<void> {
    const myRooms = await roomsForUser(db, userId, ['join', 'leave', 'ban']);
    const roomIds = myRooms.map((r) => r.roomId);
    const joinedRooms = new Set(myRooms.filter((r) => r.membership === 'join').map((r) => r.roomId));
    const changes = await membershipChangesInRooms(db, roomIds, from, to);
    for (const c of changes) {
      if (c.stateKey === userId) {
        if (c.membership === 'join') {
          // We joined a room: everyone in it is (maybe newly) someone we share a room with.
          for (const member of c.currentJoinedMembers) if (member !== userId && sharing.has(member)) changed.add(member);
        } else if (c.membership === 'leave' || c.membership === 'ban') {
          for (const member of c.currentJoinedMembers) if (!sharing.has(member)) left.add(member);
        }
        continue;
      }
      if (c.membership === 'join' && sharing.has(c.stateKey)) changed.add(c.stateKey);
      // Someone invited (or knocking) into a room we are in: clients fetch their keys to encrypt for them
      // before they join (as Synapse's "newly joined or invited or knocked users").
      if ((c.membership === 'invite' || c.membership === 'knock') && joinedRooms.has(c.roomId)) changed.add(c.stateKey);
      if ((c.membership === 'leave' || c.membership === 'ban') && !sharing.has(c.stateKey)) left.add(c.stateKey);
    }
  }
}
