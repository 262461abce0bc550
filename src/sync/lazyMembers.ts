import { LruCache } from '../util/lru.js';

// Spec: "Lazy-loading room members" — a server may skip member events it already sent to the same device
// (unless include_redundant_members). Like Synapse, remembered in memory only: another process, a restart
// or an eviction just means a redundant member event, which clients must accept anyway.

/** What one device (or sliding sync connection) was sent: per room, the member event id last sent for each user. */
interface Sent {
  rooms: Map<string, Map<string, string>>;
  /** The stream position of the newest answer that carried them (sliding sync connections only). */
  upTo: number;
}

/** Devices remembered. */
const MAX_DEVICES = 2_000;
const TTL_MS = 30 * 60_000;

export class LazyMembersCache {
  private readonly devices: LruCache<string, Sent>;

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
    return this.devices.get(this.key(userId, deviceId))?.rooms.get(roomId)?.get(member) === eventId;
  }

  /**
   * A request answered from `position`: if an answer from later was given, it never arrived (the client retries
   * its earlier `pos`), so what that answer carried is forgotten and sent again.
   */
  resumeFrom(userId: string, deviceId: string | undefined, position: number): void {
    const key = this.key(userId, deviceId);
    if ((this.devices.get(key)?.upTo ?? 0) > position) this.devices.delete(key);
  }

  /** The members remembered so far went out in an answer computed up to `position`. */
  answered(userId: string, deviceId: string | undefined, position: number): void {
    const device = this.devices.get(this.key(userId, deviceId));
    if (device) device.upTo = Math.max(device.upTo, position);
  }

  remember(userId: string, deviceId: string | undefined, roomId: string, sent: ReadonlyArray<{ member: string; eventId: string }>): void {
    if (sent.length === 0) return;
    const key = this.key(userId, deviceId);
    let device = this.devices.get(key);
    if (!device) this.devices.set(key, (device = { rooms: new Map(), upTo: 0 }));
    let members = device.rooms.get(roomId);
    if (!members) device.rooms.set(roomId, (members = new Map()));
    for (const s of sent) members.set(s.member, s.eventId);
  }
}
