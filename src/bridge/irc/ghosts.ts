import type { BridgeContext } from './context.js';
import { MatrixApiError } from '../matrix/homeserverApi.js';

/** Matrix users standing for IRC nicks: created on first sight, named after the nick, joined where the nick is. */
export class Ghosts {
  private readonly ready = new Map<string, Promise<string>>();
  private readonly joined = new Set<string>();

  constructor(private readonly ctx: BridgeContext) {}

  /** Registers the ghost of `nick` (once) and keeps its display name equal to the nick's spelling. */
  ensure(network: string, nick: string): Promise<string> {
    const userId = this.ctx.ghostId(network, nick);
    const key = `${userId}|${nick}`;
    let p = this.ready.get(key);
    if (!p) {
      p = (async () => {
        await this.ctx.matrix.ensureRegistered(userId);
        if ((await this.ctx.store.ghosts.nickOf(userId)) !== nick) {
          await this.ctx.matrix.setDisplayName(userId, nick);
          await this.ctx.store.ghosts.save(userId, network, nick);
        }
        return userId;
      })();
      p.catch(() => this.ready.delete(key));
      this.ready.set(key, p);
    }
    return p;
  }

  /** Joins the ghost to `roomId` (invited by the bot when the room needs it); a device first if encrypted. */
  async joinRoom(network: string, nick: string, roomId: string, encrypted: boolean): Promise<string> {
    const userId = await this.ensure(network, nick);
    const key = `${roomId}|${userId}`;
    if (this.joined.has(key)) return userId;
    if (encrypted) await this.ctx.matrix.ensureDevice(userId);
    try {
      await this.ctx.matrix.join(userId, roomId);
    } catch (err) {
      if (!(err instanceof MatrixApiError && err.status === 403)) throw err;
      await this.ctx.matrix.invite(this.ctx.botUserId, roomId, userId);
      await this.ctx.matrix.join(userId, roomId);
    }
    this.joined.add(key);
    return userId;
  }

  async leaveRoom(network: string, nick: string, roomId: string, reason?: string): Promise<void> {
    const userId = this.ctx.ghostId(network, nick);
    this.joined.delete(`${roomId}|${userId}`);
    await this.ctx.matrix.leave(userId, roomId, reason);
  }

  /** Learnt from membership events, so restarts and outside changes keep the cache honest. */
  noteMembership(roomId: string, userId: string, membership: string): void {
    const key = `${roomId}|${userId}`;
    if (membership === 'join') this.joined.add(key);
    else this.joined.delete(key);
  }

}
