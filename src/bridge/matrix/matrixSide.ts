import { randomUUID } from 'node:crypto';
import type { BridgeCrypto } from '../crypto/index.js';
import { HomeserverApi, MatrixApiError, registerAppserviceUser, seg } from './homeserverApi.js';
import { dict } from '../../util/dict.js';

export type Json = Record<string, unknown>;

/**
 * What the bridge does on the Matrix side, as its bot or one of its ghosts, through the Client-Server API
 * with application-service identity assertion. Sends into encrypted rooms go through the bridge's crypto.
 */
export class MatrixSide {
  private readonly registered = new Set<string>();
  private readonly encryption = new Map<string, Json | null>();
  private readonly memberCache = new Map<string, Map<string, string>>();

  constructor(
    readonly api: HomeserverApi,
    readonly botUserId: string,
    readonly domain: string,
    private readonly crypto: BridgeCrypto | undefined,
  ) {}

  get encryptionAvailable(): boolean {
    return this.crypto !== undefined;
  }

  async ensureRegistered(userId: string): Promise<void> {
    if (this.registered.has(userId) || userId === this.botUserId) return;
    await registerAppserviceUser(this.api, userId);
    this.registered.add(userId);
  }

  /** Client-Server API: PUT /rooms/{roomId}/typing/{userId}. */
  async typing(userId: string, roomId: string, typing: boolean, timeoutMs = 6000): Promise<void> {
    await this.api.request('PUT', `/_matrix/client/v3/rooms/${seg(roomId)}/typing/${seg(userId)}`, { userId, body: typing ? { typing, timeout: timeoutMs } : { typing } });
  }

  async setDisplayName(userId: string, name: string): Promise<void> {
    await this.api.request('PUT', `/_matrix/client/v3/profile/${seg(userId)}/displayname`, { userId, body: { displayname: name } });
  }

  async displayName(userId: string): Promise<string | undefined> {
    try {
      const r = await this.api.request<{ displayname?: string }>('GET', `/_matrix/client/v3/profile/${seg(userId)}/displayname`);
      return r.displayname ?? undefined;
    } catch {
      return undefined;
    }
  }

  /** Ensures the device first when the room is encrypted, so the user's messages to it can be read. */
  async join(userId: string, roomIdOrAlias: string): Promise<string> {
    await this.ensureRegistered(userId);
    const r = await this.api.request<{ room_id: string }>('POST', `/_matrix/client/v3/join/${seg(roomIdOrAlias)}`, { userId, body: {} });
    return r.room_id;
  }

  async leave(userId: string, roomId: string, reason?: string): Promise<void> {
    try {
      await this.api.request('POST', `/_matrix/client/v3/rooms/${seg(roomId)}/leave`, { userId, body: reason ? { reason } : {} });
    } catch (err) {
      if (!(err instanceof MatrixApiError && (err.status === 403 || err.status === 404))) throw err;
    }
  }

  async invite(byUserId: string, roomId: string, userId: string, reason?: string): Promise<void> {
    try {
      await this.api.request('POST', `/_matrix/client/v3/rooms/${seg(roomId)}/invite`, { userId: byUserId, body: { user_id: userId, ...(reason ? { reason } : {}) } });
    } catch (err) {
      // Already joined or invited: nothing to do.
      if (!(err instanceof MatrixApiError && err.status === 403 && /already|is in the room|joined/i.test(err.message))) throw err;
    }
  }

  async kick(byUserId: string, roomId: string, userId: string, reason?: string): Promise<void> {
    await this.api.request('POST', `/_matrix/client/v3/rooms/${seg(roomId)}/kick`, { userId: byUserId, body: { user_id: userId, ...(reason ? { reason } : {}) } });
  }

  async createRoom(asUserId: string, body: Json): Promise<string> {
    await this.ensureRegistered(asUserId);
    const r = await this.api.request<{ room_id: string }>('POST', '/_matrix/client/v3/createRoom', { userId: asUserId, body });
    return r.room_id;
  }

  async state(userId: string, roomId: string, type: string, stateKey = ''): Promise<Json | undefined> {
    try {
      return await this.api.request<Json>('GET', `/_matrix/client/v3/rooms/${seg(roomId)}/state/${seg(type)}/${seg(stateKey)}`, { userId });
    } catch (err) {
      if (err instanceof MatrixApiError && (err.status === 404 || err.status === 403)) return undefined;
      throw err;
    }
  }

  async sendState(userId: string, roomId: string, type: string, stateKey: string, content: Json): Promise<string> {
    const r = await this.api.request<{ event_id: string }>('PUT', `/_matrix/client/v3/rooms/${seg(roomId)}/state/${seg(type)}/${seg(stateKey)}`, { userId, body: content });
    return r.event_id;
  }

  async event(userId: string, roomId: string, eventId: string): Promise<Json | undefined> {
    try {
      return await this.api.request<Json>('GET', `/_matrix/client/v3/rooms/${seg(roomId)}/event/${seg(eventId)}`, { userId });
    } catch {
      return undefined;
    }
  }

  /** The room's m.room.encryption content, or null; learnt from events afterwards. */
  async encryptionOf(userId: string, roomId: string): Promise<Json | null> {
    if (this.encryption.has(roomId)) return this.encryption.get(roomId)!;
    const content = (await this.state(userId, roomId, 'm.room.encryption')) ?? null;
    const known = content && typeof content.algorithm === 'string' ? content : null;
    this.encryption.set(roomId, known);
    return known;
  }

  noteEncryption(roomId: string, content: Json): void {
    if (typeof content.algorithm === 'string') this.encryption.set(roomId, content);
  }

  /** Joined and invited members (who must be able to read what is sent), as `userId → membership`. */
  async members(userId: string, roomId: string): Promise<Map<string, string>> {
    const cached = this.memberCache.get(roomId);
    if (cached) return cached;
    const r = await this.api.request<{ chunk: Json[] }>('GET', `/_matrix/client/v3/rooms/${seg(roomId)}/members`, { userId });
    const members = new Map<string, string>();
    for (const e of r.chunk) {
      const membership = (e.content as Json | undefined)?.membership;
      if (typeof e.state_key === 'string' && (membership === 'join' || membership === 'invite')) members.set(e.state_key, membership);
    }
    this.memberCache.set(roomId, members);
    return members;
  }

  noteMembership(roomId: string, userId: string, membership: string): void {
    const members = this.memberCache.get(roomId);
    if (!members) return;
    if (membership === 'join' || membership === 'invite') members.set(userId, membership);
    else members.delete(userId);
  }

  /** Sends a room event as `userId`, encrypted when the room is; `txnId` makes retries idempotent. */
  async send(userId: string, roomId: string, type: string, content: Json, txnId: string = randomUUID()): Promise<string> {
    await this.ensureRegistered(userId);
    const encryption = await this.encryptionOf(userId, roomId);
    let sendType = type;
    let sendContent = content;
    if (encryption) {
      if (!this.crypto) throw new Error(`room ${roomId} is encrypted and the bridge's encryption is disabled`);
      const members = [...(await this.members(userId, roomId)).keys()];
      const settings = {
        rotation_period_ms: typeof encryption.rotation_period_ms === 'number' ? encryption.rotation_period_ms : undefined,
        rotation_period_msgs: typeof encryption.rotation_period_msgs === 'number' ? encryption.rotation_period_msgs : undefined,
      };
      sendContent = await this.crypto.encryptEvent(userId, roomId, type, content, members, settings);
      sendType = 'm.room.encrypted';
    }
    return this.sendUnencrypted(userId, roomId, sendType, sendContent, txnId);
  }

  /** Sends `content` as it is, even into an encrypted room (for ciphertext, or a notice the bridge cannot encrypt). */
  async sendUnencrypted(userId: string, roomId: string, type: string, content: Json, txnId: string = randomUUID()): Promise<string> {
    const r = await this.api.request<{ event_id: string }>('PUT', `/_matrix/client/v3/rooms/${seg(roomId)}/send/${seg(type)}/${seg(txnId)}`, { userId, body: content });
    return r.event_id;
  }

  async redact(userId: string, roomId: string, eventId: string, reason: string): Promise<void> {
    await this.api.request('PUT', `/_matrix/client/v3/rooms/${seg(roomId)}/redact/${seg(eventId)}/${seg(`redact-${eventId}`)}`, { userId, body: { reason } });
  }

  /** The latest `limit` events of the room as `userId` may see them, newest first. */
  async latestEvents(userId: string, roomId: string, limit: number): Promise<Json[]> {
    const r = await this.api.request<{ chunk: Json[] }>('GET', `/_matrix/client/v3/rooms/${seg(roomId)}/messages`, { userId, query: { dir: 'b', limit } });
    return r.chunk;
  }

  /** The user's own device for encrypted rooms; nothing when the bridge's encryption is off. */
  async ensureDevice(userId: string): Promise<void> {
    if (this.crypto) {
      await this.ensureRegistered(userId);
      await this.crypto.ensureDevice(userId);
    }
  }

  async decrypt(event: Json, candidates: string[]): Promise<{ type: string; content: Json } | undefined> {
    return this.crypto?.decryptEvent(event, candidates);
  }

  async setPowerLevel(byUserId: string, roomId: string, userId: string, level: number): Promise<void> {
    const pl = (await this.state(byUserId, roomId, 'm.room.power_levels')) ?? {};
    const users = Object.assign(dict<number>(), pl.users as Record<string, number> | undefined);
    const current = users[userId] ?? (typeof pl.users_default === 'number' ? pl.users_default : 0);
    if (current === level) return;
    if (level === 0) delete users[userId];
    else users[userId] = level;
    await this.sendState(byUserId, roomId, 'm.room.power_levels', '', { ...pl, users });
  }
}
