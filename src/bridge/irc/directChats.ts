import type { Json } from '../matrix/matrixSide.js';
import { ircLineToContent } from './content.js';
import type { BridgeContext } from './context.js';
import type { Ghosts } from './ghosts.js';
import type { IrcMessageKind } from './ircConnection.js';
import { sendWithRetry } from './sendRetry.js';
import type { DmRoom } from './store/repositories.js';

/** Private messages ↔ direct rooms between a Matrix user and the ghost of an IRC nick. */
export class DirectChats {
  private readonly opening = new Map<string, Promise<DmRoom>>();

  constructor(
    private readonly ctx: BridgeContext,
    private readonly ghosts: Ghosts,
  ) {}

  byRoom(roomId: string): Promise<DmRoom | undefined> {
    return this.ctx.store.dms.byRoom(roomId);
  }

  /** An IRC user messaged a Matrix user's nick: into their direct room, opened by the ghost when missing. */
  async fromIrc(network: string, userId: string, kind: IrcMessageKind, from: string, text: string): Promise<void> {
    const dm = await this.roomFor(network, userId, from);
    await sendWithRetry(this.ctx.matrix, dm.ghostId, dm.roomId, 'm.room.message', ircLineToContent(kind, text));
  }

  private async roomFor(network: string, userId: string, nick: string): Promise<DmRoom> {
    const nickKey = this.ctx.nickKey(nick);
    const existing = await this.ctx.store.dms.find(network, userId, nickKey);
    if (existing && (await this.stillThere(existing))) return existing;
    const key = `${network}|${userId}|${nickKey}`;
    let p = this.opening.get(key);
    if (!p) {
      p = this.open(network, userId, nick).finally(() => this.opening.delete(key));
      this.opening.set(key, p);
    }
    return p;
  }

  /** The Matrix user may have left the room since; then a new one is opened. */
  private async stillThere(dm: DmRoom): Promise<boolean> {
    try {
      const members = await this.ctx.matrix.members(dm.ghostId, dm.roomId);
      return members.has(dm.userId) && members.has(dm.ghostId);
    } catch {
      return false;
    }
  }

  private async open(network: string, userId: string, nick: string): Promise<DmRoom> {
    const ghostId = await this.ghosts.ensure(network, nick);
    const encrypted = this.ctx.matrix.encryptionAvailable;
    // Element opens DMs encrypted; the bridge does the same when it can, with the ghost's own device.
    if (encrypted) await this.ctx.matrix.ensureDevice(ghostId);
    const body: Json = {
      preset: 'trusted_private_chat',
      is_direct: true,
      invite: [userId],
      initial_state: encrypted ? [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }] : [],
    };
    const roomId = await this.ctx.matrix.createRoom(ghostId, body);
    if (encrypted) this.ctx.matrix.noteEncryption(roomId, { algorithm: 'm.megolm.v1.aes-sha2' });
    const dm: DmRoom = { roomId, network, userId, nickKey: this.ctx.nickKey(nick), ghostId };
    await this.ctx.store.dms.set(dm);
    this.ctx.logger.info({ network, roomId }, 'direct chat opened from IRC');
    return dm;
  }

  /** A Matrix user invited a ghost: it joins, and the room becomes their direct chat with that nick. */
  async onGhostInvited(roomId: string, inviter: string, ghostId: string): Promise<void> {
    const parsed = this.ctx.parseGhost(ghostId);
    if (!parsed) return;
    await this.ctx.matrix.ensureDevice(ghostId);
    await this.ctx.matrix.join(ghostId, roomId);
    const nick = (await this.ctx.store.ghosts.nickOf(ghostId)) ?? parsed.nickLower;
    await this.ctx.store.dms.set({ roomId, network: parsed.network, userId: inviter, nickKey: this.ctx.nickKey(nick), ghostId });
  }

  /** Tells the user, in their direct room with `nick`, that the message did not reach anyone. */
  async noSuchNick(network: string, userId: string, nick: string): Promise<boolean> {
    const dm = await this.ctx.store.dms.find(network, userId, this.ctx.nickKey(nick));
    if (!dm) return false;
    await sendWithRetry(this.ctx.matrix, dm.ghostId, dm.roomId, 'm.room.message', { msgtype: 'm.notice', body: `${nick} is not on IRC right now, so your message was not delivered.` });
    return true;
  }

  /** The nick a direct room talks to. */
  async nickOf(dm: DmRoom): Promise<string> {
    return (await this.ctx.store.ghosts.nickOf(dm.ghostId)) ?? dm.nickKey;
  }
}
