import { forbidden } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { currentMembership, roomMembers } from '../storage/repositories/state.js';

// Spec: Client-Server API, "Typing Notifications". Typing lives in memory only: it is worth nothing after
// a restart. Its stream position is per process, seeded from the clock at start so a restarted server
// begins above any position a client may still hold (one change per millisecond would be needed to catch up).

/** Longest a client may claim to be typing for. */
export const MAX_TYPING_TIMEOUT_MS = 120_000;
export const DEFAULT_TYPING_TIMEOUT_MS = 30_000;
/** How long a remote user's typing lasts unless their server repeats it (m.typing carries no timeout). */
export const REMOTE_TYPING_TIMEOUT_MS = 60_000;

/** A local user's typing changed (for federation): `typing` true is also sent when renewed. */
export type LocalTypingListener = (roomId: string, userId: string, typing: boolean) => void;

interface Typer {
  expiresAt: number;
  timer: NodeJS.Timeout;
}

export class TypingService {
  private position: number;
  /** roomId → userId → expiry. */
  private readonly typing = new Map<string, Map<string, Typer>>();
  /** roomId → the position of its latest change. */
  private readonly changedAt = new Map<string, number>();
  /** Told of every local user's typing start (and renewal) and stop, including expiry and leaving. */
  readonly onLocalChange: LocalTypingListener[] = [];

  constructor(private readonly deps: ServiceDeps) {
    this.position = deps.clock.now();
  }

  latest(): number {
    return this.position;
  }

  /** PUT /rooms/{roomId}/typing/{userId}. */
  async setTyping(userId: string, roomId: string, typing: boolean, timeoutMs: number | undefined): Promise<void> {
    const m = await currentMembership(this.deps.db.knex, roomId, userId);
    if (m?.membership !== 'join') throw forbidden(`User ${userId} not in room ${roomId}`);
    const changed = typing
      ? this.start(roomId, userId, Math.min(Math.max(0, timeoutMs ?? DEFAULT_TYPING_TIMEOUT_MS), MAX_TYPING_TIMEOUT_MS))
      : this.stop(roomId, userId);
    if (typing && !changed) this.emit(roomId, userId, true); // a renewal: remote servers extend their timeout
    if (changed) await this.wake(roomId);
  }

  /** Inbound m.typing from another server: only for a user joined to the room. */
  async setRemoteTyping(userId: string, roomId: string, typing: boolean): Promise<void> {
    const m = await currentMembership(this.deps.db.knex, roomId, userId);
    if (m?.membership !== 'join') return;
    const changed = typing ? this.start(roomId, userId, REMOTE_TYPING_TIMEOUT_MS) : this.stop(roomId, userId);
    if (changed) await this.wake(roomId);
  }

  /** Someone who left the room stops typing in it. */
  userLeft(roomId: string, userId: string): void {
    if (this.stop(roomId, userId)) this.wake(roomId).catch((err) => this.deps.logger.warn({ err, roomId }, 'typing wake-up failed'));
  }

  /** Users typing in a room now, in the order they started. */
  typers(roomId: string): string[] {
    return [...(this.typing.get(roomId)?.keys() ?? [])];
  }

  /** Rooms whose typing changed after `fromExclusive`. */
  changedSince(fromExclusive: number): string[] {
    const out: string[] = [];
    for (const [roomId, at] of this.changedAt) if (at > fromExclusive) out.push(roomId);
    return out;
  }

  /** Rooms whose typing changed at least once since start (someone may or may not be typing now). */
  touchedRooms(): string[] {
    return [...this.changedAt.keys()];
  }

  close(): void {
    for (const room of this.typing.values()) for (const t of room.values()) clearTimeout(t.timer);
    this.typing.clear();
  }

  /** Returns whether the user was not typing before. */
  private start(roomId: string, userId: string, timeoutMs: number): boolean {
    let room = this.typing.get(roomId);
    if (!room) this.typing.set(roomId, (room = new Map()));
    const existing = room.get(userId);
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      if (this.stop(roomId, userId)) this.wake(roomId).catch((err) => this.deps.logger.warn({ err, roomId }, 'typing expiry wake-up failed'));
    }, timeoutMs);
    timer.unref?.();
    room.set(userId, { expiresAt: this.deps.clock.now() + timeoutMs, timer });
    // A renewed "still typing" changes nothing others see; only a new typer is news.
    if (!existing) {
      this.bump(roomId);
      this.emit(roomId, userId, true);
    }
    return !existing;
  }

  /** Returns whether the user was typing. */
  private stop(roomId: string, userId: string): boolean {
    const room = this.typing.get(roomId);
    const t = room?.get(userId);
    if (!room || !t) return false;
    clearTimeout(t.timer);
    room.delete(userId);
    if (room.size === 0) this.typing.delete(roomId);
    this.bump(roomId);
    this.emit(roomId, userId, false);
    return true;
  }

  private emit(roomId: string, userId: string, typing: boolean): void {
    if (userId.slice(userId.indexOf(':') + 1) !== this.deps.serverName) return;
    for (const listener of this.onLocalChange) {
      try {
        listener(roomId, userId, typing);
      } catch (err) {
        this.deps.logger.warn({ err, roomId }, 'typing listener failed');
      }
    }
  }

  private bump(roomId: string): void {
    this.position += 1;
    this.changedAt.set(roomId, this.position);
  }

  private async wake(roomId: string): Promise<void> {
    this.deps.notifier.notifyUsers(await roomMembers(this.deps.db.knex, roomId, ['join']));
    this.deps.notifier.notifyRooms([roomId]);
  }
}
