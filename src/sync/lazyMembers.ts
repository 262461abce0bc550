import { LruCache } from '../util/lru.js';

// Spec: "Lazy-loading room members" — a server may skip member events it already sent to the same device
// (unless include_redundant_members). Like Synapse, remembered in memory only: another process, a restart
// or an eviction just means a redundant member event, which clients must accept anyway.

/** Devices remembered; each keeps, per room, the member event id last sent for each user. */
const MAX_DEVICES = 2_000;
const TTL_MS = 30 * 60_000;

export class LazyMembersCache {
  private readonly devices: LruCache<string, Map<string, Map<string, string>>>;

  constructor(now: () => number) {
    this.devices = new LruCache(MAX_DEVICES, TTL_MS, now);
  }

  private key(userId: string, deviceId: string | undefined): string {
    return `${userId}\u0000${deviceId ?? ''}`;
  }

  /** A new sync sequence (no since token): the client has forgotten what it was sent. */
  reset(userId: string, deviceId: string | undefined): void {
    this.devices.delete(this.key(userId, deviceId));
  }

  /** Whether this member event was the last one sent to the device for that user in that room. */
  alreadySent(userId: string, deviceId: string | undefined, roomId: string, member: string, eventId: string): boolean {
    return this.devices.get(this.key(userId, deviceId))?.get(roomId)?.get(member) === eventId;
  }

  remember(userId: string, deviceId: string | undefined, roomId: string, sent: ReadonlyArray<{ member: string; eventId: string }>): void {
    if (sent.length === 0) return;
    const key = this.key(userId, deviceId);
    let rooms = this.devices.get(key);
    if (!rooms) this.devices.set(key, (rooms = new Map()));
    let members = rooms.get(roomId);
    if (!members) rooms.set(roomId, (members = new Map()));
    for (const s of sent) members.set(s.member, s.eventId);
  }
}
