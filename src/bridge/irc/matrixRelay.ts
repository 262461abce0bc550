import type { Json } from '../matrix/matrixSide.js';
import type { AdminCommands } from './commands.js';
import type { BridgeContext } from './context.js';
import type { DirectChats } from './directChats.js';
import type { Ghosts } from './ghosts.js';
import { reactionLine, redactionLine, renderForIrc } from './matrixContent.js';
import type { MatrixTyping } from './typing.js';
import type { Outbox } from './outbox.js';
import type { Portals } from './portals.js';
import type { Puppets } from './puppets.js';
import type { OutboxItem, Portal } from './store/repositories.js';

/** How long an encrypted event waits for its room key before the bridge gives up on it (and says so). */
const KEY_WAIT_MS = 60_000;
/** Redactions of what the bridge said on IRC within this long are noted there. */
const RECENT_MS = 60 * 60_000;

/**
 * Events from the homeserver's transactions, turned into IRC actions: messages into the outbox, joins and
 * leaves into IRC JOIN/PART, invites into direct chats and admin rooms, commands into the admin handler.
 */
export class MatrixRelay {
  /** Recently bridged event ids: one event reaching us twice (pushed and caught up) is bridged once. */
  private readonly seen = new Set<string>();
  constructor(
    private readonly ctx: BridgeContext,
    private readonly ghosts: Ghosts,
    private readonly portals: Portals,
    private readonly puppets: Puppets,
    private readonly dms: DirectChats,
    private readonly outbox: Outbox,
    private readonly commands: AdminCommands,
    private readonly receiveCrypto: (body: Json) => Promise<void>,
    private readonly typing?: MatrixTyping,
  ) {}

  /** What the bridge recently said on IRC for each Matrix event, so a redaction can name it. */
  private readonly recent = new Map<string, { sender: string; text: string; ts: number }>();

  /** Application Service API transaction: handled once, even when the homeserver sends it again. */
  async onTransaction(txnId: string, body: Json): Promise<void> {
    if (await this.ctx.store.transactions.seen(txnId)) return;
    // Keys first: a room key and the message it opens often arrive in the same transaction.
    await this.receiveCrypto(body);
    for (const event of (body.events as Json[]) ?? []) {
      if (typeof event !== 'object' || event === null) continue;
      try {
        await this.handle(event);
      } catch (err) {
        this.ctx.logger.warn({ err: (err as Error).message, type: event.type, room: event.room_id }, 'Matrix event not bridged');
      }
    }
    const ephemeral = body.ephemeral ?? body['de.sorunome.msc2409.ephemeral'];
    for (const e of Array.isArray(ephemeral) ? (ephemeral as Json[]) : []) {
      if (typeof e === 'object' && e !== null) await this.typing?.onEphemeral(e).catch((err: Error) => this.ctx.logger.debug({ err: err.message }, 'typing not bridged'));
    }
    // Room keys come as to-device messages: only then can a waiting event have become readable.
    if (Array.isArray(body['de.sorunome.msc2409.to_device']) || Array.isArray(body.to_device)) await this.retryUndecrypted();
    await this.ctx.store.transactions.record(txnId);
  }

  private async handle(event: Json): Promise<void> {
    const type = String(event.type ?? '');
    const roomId = String(event.room_id ?? '');
    const sender = String(event.sender ?? '');
    if (!roomId || !sender) return;
    if (type === 'm.room.member' && typeof event.state_key === 'string') return this.membership(event, roomId, sender, event.state_key);
    if (type === 'm.room.encryption' && event.state_key === '') {
      this.ctx.matrix.noteEncryption(roomId, (event.content ?? {}) as Json);
      const portal = await this.portals.byRoom(roomId);
      if (portal) await this.ctx.store.portals.setEncrypted(roomId, true);
      // Without encryption the bridge goes deaf here: say so (in the clear, the only way it can).
      if (portal && !this.ctx.matrix.encryptionAvailable) {
        const notice = { msgtype: 'm.notice', body: 'This bridge has encryption turned off, so it cannot read or send messages in this room any more.' };
        await this.ctx.matrix.sendUnencrypted(this.ctx.botUserId, roomId, 'm.room.message', notice, `enc-${String(event.event_id)}`);
      }
      return;
    }
    if (this.ctx.isBridgeUser(sender)) return;
    if (type === 'm.room.encrypted') {
      await this.encrypted(event, roomId);
      return;
    }
    await this.content(event, type, roomId, sender, (event.content ?? {}) as Json);
  }

  /** Decrypts and bridges; an event whose key has not arrived yet is kept and retried after each transaction. */
  private async encrypted(event: Json, roomId: string, retry = false): Promise<boolean> {
    const candidates = await this.decryptors(roomId);
    const clear = await this.ctx.matrix.decrypt(event, candidates).catch(() => undefined);
    if (!clear) {
      if (!retry) await this.ctx.store.undecrypted.add(String(event.event_id), event);
      return false;
    }
    if (retry) await this.ctx.store.undecrypted.remove(String(event.event_id));
    await this.content(event, clear.type, roomId, String(event.sender), clear.content);
    return true;
  }

  /** Bridge users in the room whose devices may hold its keys: the bot, or the ghost of a direct chat. */
  private async decryptors(roomId: string): Promise<string[]> {
    const dm = await this.dms.byRoom(roomId);
    return dm ? [dm.ghostId, this.ctx.botUserId] : [this.ctx.botUserId];
  }

  async retryUndecrypted(): Promise<void> {
    for (const pending of await this.ctx.store.undecrypted.all()) {
      if (Date.now() - pending.ts > KEY_WAIT_MS) {
        await this.ctx.store.undecrypted.remove(pending.eventId);
        this.ctx.logger.warn({ room: pending.event.room_id }, 'an encrypted message never became readable for the bridge');
        await this.reportUnreadable(pending.event).catch((err: Error) => this.ctx.logger.warn({ err: err.message }, 'could not report an unreadable message'));
        continue;
      }
      await this.encrypted(pending.event, String(pending.event.room_id), true).catch(() => false);
    }
  }

  /** Said in the room itself, so nobody believes IRC got a message it never saw. */
  private async reportUnreadable(event: Json): Promise<void> {
    const roomId = String(event.room_id);
    const sender = String(event.sender);
    const dm = await this.dms.byRoom(roomId);
    const speaker = dm ? dm.ghostId : this.ctx.botUserId;
    const name = (await this.ctx.matrix.displayName(sender)) ?? sender;
    const body = `${name}: the bridge could not decrypt one of your messages (its key never reached the bridge), so it was not sent to IRC. Please send it again.`;
    await this.ctx.matrix.send(speaker, roomId, 'm.room.message', { msgtype: 'm.notice', body, 'm.mentions': { user_ids: [sender] } });
  }

  private async content(event: Json, type: string, roomId: string, sender: string, content: Json): Promise<void> {
    if (!['m.room.message', 'm.sticker', 'm.room.topic', 'm.reaction', 'm.room.redaction'].includes(type)) return;
    const eventId = String(event.event_id);
    if (this.seen.has(eventId)) return;
    this.seen.add(eventId);
    if (this.seen.size > 2000) this.seen.delete(this.seen.values().next().value!);
    if (type === 'm.room.message' && (await this.ctx.store.adminRooms.userOf(roomId)) === sender) {
      if (typeof content.body === 'string') await this.commands.handle(roomId, sender, eventId, content.body);
      return;
    }
    const portal = await this.portals.byRoom(roomId);
    const dm = portal ? undefined : await this.dms.byRoom(roomId);
    if (!portal && !(dm && dm.userId === sender)) return;
    const network = portal?.network ?? dm!.network;
    const target = portal ? portal.channel : await this.dms.nickOf(dm!);
    if (type === 'm.room.topic') {
      if (portal && typeof content.topic === 'string') await this.queue(sender, network, [{ command: 'TOPIC', target, text: content.topic }], eventId);
      return;
    }
    if (type === 'm.reaction') {
      const relates = (content['m.relates_to'] ?? {}) as Json;
      if (relates.rel_type !== 'm.annotation' || typeof relates.key !== 'string' || typeof relates.event_id !== 'string') return;
      const quote = await this.quoteOf(roomId, relates.event_id, network);
      await this.queue(sender, network, [{ command: 'ACTION', target, text: reactionLine(relates.key, quote) }], eventId);
      return;
    }
    if (type === 'm.room.redaction') {
      const redacts = typeof event.redacts === 'string' ? event.redacts : content.redacts;
      const said = typeof redacts === 'string' ? this.recent.get(redacts) : undefined;
      // Only what the bridge itself said on IRC lately: older lines have scrolled away, others were never there.
      if (!said || Date.now() - said.ts > RECENT_MS) return;
      this.recent.delete(redacts as string);
      const whose = said.sender === sender ? undefined : ((await this.ctx.matrix.displayName(said.sender)) ?? said.sender);
      await this.queue(sender, network, [{ command: 'ACTION', target, text: redactionLine(said.text, whose) }], eventId);
      return;
    }
    const net = this.ctx.network(network)!;
    const replyTo = await this.repliedTo(roomId, content, network);
    const rendered = renderForIrc(type, content, target, {
      mediaLink: this.ctx.mediaLink,
      maxNickLength: net.max_nick_length,
      maxLines: net.max_lines,
      maxMediaBytes: this.ctx.config.media_proxy.enabled ? this.ctx.config.media_proxy.max_size : undefined,
      permalink: `https://matrix.to/#/${encodeURIComponent(roomId)}/${encodeURIComponent(eventId)}`,
      replyTo,
    });
    await this.queue(sender, network, rendered.lines.map((text) => ({ command: rendered.command, target, text })), eventId);
    if (rendered.lines.length) this.remember(eventId, sender, rendered.lines.join(' '));
  }

  private remember(eventId: string, sender: string, text: string): void {
    this.recent.set(eventId, { sender, text, ts: Date.now() });
    if (this.recent.size > 2000) this.recent.delete(this.recent.keys().next().value!);
  }

  private async queue(sender: string, network: string, items: Array<Pick<OutboxItem, 'command' | 'target' | 'text'>>, eventId: string): Promise<void> {
    if (!items.length) return;
    await this.outbox.add(items.map((i) => ({ ...i, eventId, userId: sender, network })));
    this.outbox.wake(sender, network);
  }

  /** Who said what in the message being replied to, for the IRC rendering of a reply. */
  private async repliedTo(roomId: string, content: Json, network: string): Promise<{ nick: string; text: string } | undefined> {
    const relates = content['m.relates_to'] as Json | undefined;
    const inReplyTo = relates?.['m.in_reply_to'] as Json | undefined;
    if (!inReplyTo || typeof inReplyTo.event_id !== 'string' || relates?.rel_type === 'm.replace') return undefined;
    return this.quoteOf(roomId, inReplyTo.event_id, network);
  }

  /** The nick and text of a message in the room (decrypted if need be), for quoting it on IRC. */
  private async quoteOf(roomId: string, eventId: string, network: string): Promise<{ nick: string; text: string } | undefined> {
    const reader = (await this.decryptors(roomId))[0]!;
    let original = await this.ctx.matrix.event(reader, roomId, eventId);
    if (!original) return undefined;
    if (original.type === 'm.room.encrypted') {
      const clear = await this.ctx.matrix.decrypt(original, await this.decryptors(roomId)).catch(() => undefined);
      if (!clear) return undefined;
      original = { ...original, type: clear.type, content: clear.content };
    }
    const body = (original.content as Json | undefined)?.body;
    if (typeof body !== 'string') return undefined;
    const sender = String(original.sender);
    const nick = (await this.ctx.store.ghosts.nickOf(sender)) ?? this.puppets.get(network, sender)?.nick ?? (await this.ctx.matrix.displayName(sender)) ?? sender;
    return { nick, text: body.split('\n').filter((l) => !l.startsWith('> ')).join(' ') };
  }

  private async membership(event: Json, roomId: string, sender: string, target: string): Promise<void> {
    const membership = String((event.content as Json | undefined)?.membership ?? '');
    const previous = String(((event.unsigned as Json | undefined)?.prev_content as Json | undefined)?.membership ?? '');
    this.ctx.matrix.noteMembership(roomId, target, membership);
    this.ghosts.noteMembership(roomId, target, membership);
    if (target === this.ctx.botUserId) {
      if (membership === 'invite' && !this.ctx.isBridgeUser(sender)) await this.botInvited(roomId, sender, event);
      return;
    }
    if (this.ctx.isBridgeUser(target)) {
      if (this.ctx.isBridgeUser(sender)) return;
      const portal = membership === 'invite' ? await this.portals.byRoom(roomId) : undefined;
      if (portal) await this.ghostInvited(portal, sender, target, event);
      else if (membership === 'invite') {
        await this.dms.onGhostInvited(roomId, sender, target);
        await this.catchUp(roomId, target, sender, event);
      }
      else if ((membership === 'leave' || membership === 'ban') && sender !== target) await this.ghostRemoved(roomId, sender, target, event);
      return;
    }
    await this.matrixUserMembership(roomId, target, membership, previous, event);
  }

  /** An invite to the bot from a Matrix user: their admin room (portals are the bot's own rooms). */
  private async botInvited(roomId: string, inviter: string, event: Json): Promise<void> {
    if (await this.portals.byRoom(roomId)) return;
    await this.ctx.matrix.ensureDevice(this.ctx.botUserId);
    await this.ctx.matrix.join(this.ctx.botUserId, roomId);
    const previous = await this.ctx.store.adminRooms.roomOf(inviter);
    await this.ctx.store.adminRooms.set(inviter, roomId);
    if (previous && previous !== roomId) await this.ctx.matrix.leave(this.ctx.botUserId, previous, 'Replaced by a new admin room');
    await this.commands.welcome(roomId);
    await this.catchUp(roomId, this.ctx.botUserId, inviter, event);
  }

  /**
   * What the inviter said between the invite and our join: a homeserver sends a room's events to the bridge
   * only once one of its users is in the room, and Element users type straight away.
   */
  private async catchUp(roomId: string, reader: string, inviter: string, invite: Json): Promise<void> {
    const since = Number(invite.origin_server_ts ?? 0);
    const latest = await this.ctx.matrix.latestEvents(reader, roomId, 50).catch(() => [] as Json[]);
    const missed = latest
      .filter((e) => e.sender === inviter && (e.type === 'm.room.message' || e.type === 'm.room.encrypted') && Number(e.origin_server_ts ?? 0) >= since)
      .reverse();
    for (const e of missed) await this.handle({ ...e, room_id: roomId });
  }

  /** A Matrix user invited an IRC user's ghost into a portal: an IRC INVITE from their own connection. */
  private async ghostInvited(portal: Portal, sender: string, ghostId: string, event: Json): Promise<void> {
    const parsed = this.ctx.parseGhost(ghostId);
    if (!parsed || parsed.network !== portal.network) return;
    const nick = (await this.ctx.store.ghosts.nickOf(ghostId)) ?? parsed.nickLower;
    await this.queue(sender, portal.network, [{ command: 'INVITE', target: portal.channel, text: nick }], String(event.event_id));
  }

  /** A Matrix user kicked or banned an IRC user's ghost from a portal: the same on IRC, if they may. */
  private async ghostRemoved(roomId: string, sender: string, ghostId: string, event: Json): Promise<void> {
    const portal = await this.portals.byRoom(roomId);
    const nick = await this.ctx.store.ghosts.nickOf(ghostId);
    if (!portal || !nick) return;
    const reason = String((event.content as Json | undefined)?.reason ?? '');
    await this.queue(sender, portal.network, [{ command: 'KICK', target: portal.channel, text: `${nick} ${reason || 'Kicked from Matrix'}` }], String(event.event_id));
  }

  private async matrixUserMembership(roomId: string, userId: string, membership: string, previous: string, event: Json): Promise<void> {
    const portal = await this.portals.byRoom(roomId);
    if (portal) {
      const displayname = (event.content as Json | undefined)?.displayname;
      const before = ((event.unsigned as Json | undefined)?.prev_content as Json | undefined)?.displayname;
      if (membership === 'join' && previous === 'join' && typeof displayname === 'string' && displayname !== before) {
        await this.puppets.followDisplayName(portal.network, userId, displayname);
      } else if (membership === 'join' && previous !== 'join') {
        this.puppets
          .join(portal.network, userId, portal.channel)
          .then(() => (typeof displayname === 'string' ? this.puppets.followDisplayName(portal.network, userId, displayname) : undefined))
          .catch((err: Error) => this.notify(userId, `Could not join ${portal.channel} on ${portal.network}: ${err.message}`));
      } else if ((membership === 'leave' || membership === 'ban') && previous === 'join') {
        const reason = String((event.content as Json | undefined)?.reason ?? '');
        await this.puppets.part(portal.network, userId, portal.channel, reason || 'Left Matrix room');
      }
      return;
    }
    if (membership !== 'leave' && membership !== 'ban') return;
    const dm = await this.dms.byRoom(roomId);
    if (dm && dm.userId === userId) {
      await this.ctx.matrix.leave(dm.ghostId, roomId);
      await this.ctx.store.dms.remove(roomId);
    }
    if ((await this.ctx.store.adminRooms.userOf(roomId)) === userId) {
      await this.ctx.matrix.leave(this.ctx.botUserId, roomId);
      await this.ctx.store.adminRooms.removeRoom(roomId);
    }
  }

  /** Tells a Matrix user something in their admin room, when they have one. */
  notify(userId: string, text: string): void {
    void this.ctx.store.adminRooms
      .roomOf(userId)
      .then((roomId) => (roomId ? this.commands.reply(roomId, text) : undefined))
      .catch((err: Error) => this.ctx.logger.warn({ err: err.message }, 'could not notify user'));
  }
}
