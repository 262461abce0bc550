import { forbidden } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import {
  getPresence,
  maxPresenceStreamId,
  putPresence,
  touchPresenceSync,
  type PresenceRow,
  type PresenceState,
} from '../storage/repositories/presence.js';
import { usersSharingRooms } from '../storage/repositories/state.js';

// Spec: Client-Server API, "Presence". The stored row is what the user (or their syncing) last said;
// idleness and going offline are derived when the row is read, so no timer writes anything.

/** Online with no activity for this long reads as unavailable (Synapse's IDLE_TIMER). */
export const IDLE_AFTER_MS = 5 * 60_000;
/** No sync (or presence update) for this long reads as offline; a sync in flight here counts as alive. */
export const OFFLINE_AFTER_MS = 60_000;
/** Activity newer than this is `currently_active`; older activity is republished at most this often. */
export const LAST_ACTIVE_GRANULARITY_MS = 60_000;
/**
 * A remote user's presence reads as offline when their server has said nothing for this long (servers
 * repeat an online user's presence while it lasts; Synapse uses the same 30 minutes).
 */
export const REMOTE_OFFLINE_AFTER_MS = 30 * 60_000;
/** A sign of life is written to the database at most this often per user (no stream position). */
const TOUCH_EVERY_MS = 10_000;

/** How long, and how many, remote updates for users we share no room with yet are kept in memory. */
const HOLD_REMOTE_MS = 60_000;
const MAX_HELD_REMOTE = 1000;

export type SetPresence = 'online' | 'unavailable' | 'offline';

export interface RemotePresenceUpdate {
  presence: PresenceState;
  last_active_ago?: number | undefined;
  status_msg?: string | undefined;
  currently_active?: boolean | undefined;
}

export interface PresenceContent {
  presence: PresenceState;
  last_active_ago?: number;
  status_msg?: string;
  currently_active?: boolean;
}

/** A local user's presence was published (for federation). */
export type LocalPresenceListener = (userId: string, content: PresenceContent) => void;

export class PresenceService {
  readonly enabled: boolean;
  /** Told of every presence change a local user publishes. */
  readonly onLocalChange: LocalPresenceListener[] = [];
  /** Syncs in flight in this process, per user: a long-poll is a sign of life. */
  private readonly syncing = new Map<string, number>();
  private readonly touched = new Map<string, number>();
  /**
   * Remote updates for users nobody here shares a room with yet, kept briefly: a server sends its users'
   * presence as soon as our user's join reaches it, often before that join has committed here.
   */
  private readonly heldRemote = new Map<string, { update: RemotePresenceUpdate; at: number }>();

  constructor(private readonly deps: ServiceDeps) {
    this.enabled = deps.config.presence.enabled;
  }

  now(): number {
    return this.deps.clock.now();
  }

  async latest(): Promise<number> {
    return this.enabled ? maxPresenceStreamId(this.deps.db.knex) : 0;
  }

  /** The state a stored row stands for now. */
  effectiveState(row: PresenceRow, now = this.deps.clock.now(), ownSyncs = 0): PresenceState {
    if (row.state === 'offline') return 'offline';
    const inFlight = (this.syncing.get(row.userId) ?? 0) - ownSyncs > 0;
    const offlineAfter = this.isLocal(row.userId) ? OFFLINE_AFTER_MS : REMOTE_OFFLINE_AFTER_MS;
    if (!inFlight && now - row.lastSyncTs > offlineAfter) return 'offline';
    if (row.state === 'online' && now - row.lastActiveTs > IDLE_AFTER_MS) return 'unavailable';
    return row.state;
  }

  /** The `content` of an m.presence event, or the GET /presence answer. */
  content(row: PresenceRow | undefined, now = this.deps.clock.now()): PresenceContent {
    if (!row) return { presence: 'offline' };
    const presence = this.effectiveState(row, now);
    const out: PresenceContent = {
      presence,
      last_active_ago: Math.max(0, now - row.lastActiveTs),
      currently_active: presence === 'online' && now - row.lastActiveTs < LAST_ACTIVE_GRANULARITY_MS,
    };
    if (row.statusMsg !== undefined) out.status_msg = row.statusMsg;
    return out;
  }

  /** PUT /presence/{userId}/status: accepted but ignored when presence is disabled (as Synapse does). */
  async setPresence(userId: string, state: PresenceState, statusMsg: string | undefined): Promise<void> {
    if (!this.enabled) return;
    const now = this.deps.clock.now();
    const prev = await getPresence(this.deps.db.knex, userId);
    await this.publish({
      userId,
      state,
      statusMsg,
      lastActiveTs: state === 'online' ? now : (prev?.lastActiveTs ?? now),
      lastSyncTs: now,
      explicit: true,
    });
  }

  /** GET /presence/{userId}/status: yourself, or someone you share a room with. */
  async getPresence(requesterId: string, userId: string): Promise<PresenceContent> {
    if (requesterId !== userId) {
      const peers = await usersSharingRooms(this.deps.db.knex, requesterId);
      if (!peers.includes(userId)) throw forbidden('You are not allowed to see their presence.');
    }
    if (!this.enabled) return { presence: 'offline' };
    return this.content(await getPresence(this.deps.db.knex, userId));
  }

  /**
   * Runs one /sync for a user, applying its `set_presence` (spec: online by default; offline leaves the
   * presence alone) and counting the request as a sign of life while it lasts.
   */
  async duringSync<T>(userId: string, setPresence: SetPresence | undefined, fn: () => Promise<T>): Promise<T> {
    if (!this.enabled) return fn();
    const state = setPresence ?? 'online';
    if (state === 'offline') {
      // "Not marked as being online": the request is no sign of life, but one already online stays so.
      await this.userSyncing(userId, state).catch((err) => this.deps.logger.warn({ err, userId }, 'presence update on sync failed'));
      return fn();
    }
    this.syncing.set(userId, (this.syncing.get(userId) ?? 0) + 1);
    try {
      await this.userSyncing(userId, state).catch((err) => this.deps.logger.warn({ err, userId }, 'presence update on sync failed'));
      return await fn();
    } finally {
      const n = (this.syncing.get(userId) ?? 1) - 1;
      if (n <= 0) this.syncing.delete(userId);
      else this.syncing.set(userId, n);
      this.touch(userId).catch((err) => this.deps.logger.warn({ err, userId }, 'presence touch failed'));
    }
  }

  private async userSyncing(userId: string, setPresence: SetPresence): Promise<void> {
    const now = this.deps.clock.now();
    const prev = await getPresence(this.deps.db.knex, userId);
    if (setPresence === 'offline') {
      if (prev && this.effectiveState(prev, now) !== 'offline') await this.touch(userId);
      return;
    }
    // The request is already counted in `syncing`; read the state as it was before it arrived.
    const was = prev ? this.effectiveState(prev, now, 1) : 'offline';
    if (setPresence === 'unavailable') {
      if (was !== 'unavailable') {
        await this.publish({ userId, state: 'unavailable', statusMsg: prev?.statusMsg, lastActiveTs: prev?.lastActiveTs ?? now, lastSyncTs: now, explicit: false });
      } else await this.touch(userId);
      return;
    }
    // Online: an explicit "unavailable" set through PUT /presence stands until the user changes it.
    if (prev && was === 'unavailable' && prev.state === 'unavailable' && prev.explicit) {
      await this.touch(userId);
      return;
    }
    const stale = !prev || was !== 'online' || now - prev.lastActiveTs >= LAST_ACTIVE_GRANULARITY_MS;
    if (stale) {
      await this.publish({ userId, state: 'online', statusMsg: prev?.statusMsg, lastActiveTs: now, lastSyncTs: now, explicit: false });
    } else await this.touch(userId);
  }

  /** Inbound m.presence from another server (the dispatcher checked the user belongs to it). */
  async receiveRemote(userId: string, update: RemotePresenceUpdate): Promise<void> {
    if (!this.enabled || this.isLocal(userId)) return;
    // Kept only for users someone here shares a room with: nobody else may see it.
    const peers = await usersSharingRooms(this.deps.db.knex, userId);
    const now = this.deps.clock.now();
    if (!peers.some((u) => this.isLocal(u))) {
      this.hold(userId, update, now);
      return;
    }
    this.heldRemote.delete(userId);
    const lastActiveTs = now - Math.max(0, update.last_active_ago ?? 0);
    await this.deps.db.write((trx) =>
      putPresence(trx, { userId, state: update.presence, statusMsg: update.status_msg, lastActiveTs, lastSyncTs: now, explicit: false }),
    );
    this.deps.notifier.notifyUsers(peers);
  }

  /** A local user joined a room with these remote users: their held-back updates may now be kept. */
  async applyHeldRemote(userIds: readonly string[]): Promise<void> {
    const now = this.deps.clock.now();
    for (const userId of userIds) {
      const held = this.heldRemote.get(userId);
      if (!held) continue;
      this.heldRemote.delete(userId);
      if (now - held.at > HOLD_REMOTE_MS) continue;
      const age = now - held.at;
      await this.receiveRemote(userId, { ...held.update, last_active_ago: (held.update.last_active_ago ?? 0) + age });
    }
  }

  private hold(userId: string, update: RemotePresenceUpdate, now: number): void {
    this.heldRemote.delete(userId);
    this.heldRemote.set(userId, { update, at: now });
    // Bounded: the oldest entries go first (a Map iterates in insertion order).
    for (const [key, value] of this.heldRemote) {
      if (this.heldRemote.size <= MAX_HELD_REMOTE && now - value.at <= HOLD_REMOTE_MS) break;
      this.heldRemote.delete(key);
    }
  }

  private isLocal(userId: string): boolean {
    return userId.slice(userId.indexOf(':') + 1) === this.deps.serverName;
  }

  /** Keeps last_sync_ts fresh without publishing a change. */
  private async touch(userId: string): Promise<void> {
    const now = this.deps.clock.now();
    if (now - (this.touched.get(userId) ?? 0) < TOUCH_EVERY_MS) return;
    this.touched.set(userId, now);
    await touchPresenceSync(this.deps.db.knex, userId, now);
  }

  private async publish(row: Omit<PresenceRow, 'streamId'>): Promise<void> {
    await this.deps.db.write((trx) => putPresence(trx, row));
    this.touched.set(row.userId, row.lastSyncTs);
    this.deps.notifier.notifyUsers(await usersSharingRooms(this.deps.db.knex, row.userId));
    if (this.onLocalChange.length && this.isLocal(row.userId)) {
      const content = this.content({ ...row, streamId: 0 });
      for (const listener of this.onLocalChange) {
        try {
          listener(row.userId, content);
        } catch (err) {
          this.deps.logger.warn({ err, userId: row.userId }, 'presence listener failed');
        }
      }
    }
  }
}
