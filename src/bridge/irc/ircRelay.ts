import { SerialQueue } from '../serialQueue.js';
import { ircLineToContent, quitReason } from './content.js';
import type { BridgeContext } from './context.js';
import type { Ghosts } from './ghosts.js';
import { isChannelTarget } from './ids.js';
import { connectionOptions, IrcConnection, type IrcMessageKind } from './ircConnection.js';
import type { Portals } from './portals.js';
import type { Puppets } from './puppets.js';
import { sendWithRetry } from './sendRetry.js';

const OP_LEVEL = 50;

/**
 * The bridge's own connection to each network: it sits in every bridged channel and mirrors what IRC users
 * say and do into the portal rooms, one network at a time in order.
 */
export class IrcRelay {
  private readonly bots = new Map<string, IrcConnection>();
  private readonly queues = new Map<string, SerialQueue>();

  constructor(
    private readonly ctx: BridgeContext,
    private readonly ghosts: Ghosts,
    private readonly puppets: Puppets,
    private readonly portals: () => Portals,
  ) {}

  bot(network: string): IrcConnection | undefined {
    return this.bots.get(network);
  }

  /** Connects the bot to `network` and rejoins every portal channel (also after reconnects). */
  async start(network: string): Promise<void> {
    const net = this.ctx.network(network)!;
    const identity = { nick: net.bot_nick, userName: 'skjolbot', realName: 'Skjól IRC bridge', sasl: net.sasl };
    const options = connectionOptions(net, identity, this.ctx.logger.child({ network, bot: true }));
    const conn = new IrcConnection({ ...options, channelKey: (c) => this.ctx.channelKeys.get(network, c) });
    this.bots.set(network, conn);
    this.bind(network, conn);
    for (const portal of await this.ctx.store.portals.all(network)) void conn.join(portal.channel).catch(() => undefined);
    conn.connect().catch((err: Error) => this.ctx.logger.warn({ network, err: err.message }, 'IRC network not reachable yet; retrying'));
  }

  async listen(network: string, channel: string): Promise<void> {
    const bot = this.bots.get(network);
    if (bot) await bot.join(channel).catch((err: Error) => this.ctx.logger.warn({ network, channel, err: err.message }, 'bot could not join'));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.bots.values()].map((b) => b.quit('Bridge shutting down')));
    this.bots.clear();
    await Promise.all([...this.queues.values()].map((q) => q.drained()));
  }

  /** Runs the IRC events of one channel strictly in order (channels go in parallel); one failure never blocks the next. */
  private enqueue(network: string, channel: string, what: string, fn: () => Promise<void>): void {
    const key = `${network}|${this.ctx.channelKey(channel)}`;
    let queue = this.queues.get(key);
    if (!queue) this.queues.set(key, (queue = new SerialQueue()));
    queue.run(fn).catch((err: Error) => this.ctx.logger.warn({ network, what, err: err.message }, 'IRC event not bridged'));
  }

  /** Echoes of our own users and the bot itself are not IRC users. */
  private isOurs(network: string, nick: string): boolean {
    const bot = this.bots.get(network);
    return (bot !== undefined && this.ctx.nickKey(bot.nick) === this.ctx.nickKey(nick)) || this.puppets.userForNick(network, nick) !== undefined;
  }

  private bind(network: string, conn: IrcConnection): void {
    conn.on('message', (kind, from, to, text) => {
      if (isChannelTarget(to)) {
        if (!this.isOurs(network, from)) this.enqueue(network, to, 'message', () => this.channelMessage(network, kind, from, to, text));
      } else if (this.ctx.nickKey(to) === this.ctx.nickKey(conn.nick) && kind !== 'notice' && !this.isOurs(network, from)) {
        void conn.send('NOTICE', from, 'I am the Matrix bridge bot. To reach a Matrix user, message their nick; Matrix users join #channels through the bridge.');
      }
    });
    conn.on('join', (channel, nick) => {
      if (!this.isOurs(network, nick)) this.enqueue(network, channel, 'join', () => this.inPortal(network, channel, (roomId, encrypted) => this.ghosts.joinRoom(network, nick, roomId, encrypted)));
    });
    conn.on('part', (channel, nick, reason) => {
      if (!this.isOurs(network, nick)) this.enqueue(network, channel, 'part', () => this.inPortal(network, channel, (roomId) => this.ghosts.leaveRoom(network, nick, roomId, reason || undefined)));
    });
    conn.on('quit', (nick, reason, channels) => {
      if (this.isOurs(network, nick)) return;
      for (const channel of channels) {
        this.enqueue(network, channel, 'quit', () => this.inPortal(network, channel, (roomId) => this.ghosts.leaveRoom(network, nick, roomId, quitReason(reason))));
      }
    });
    conn.on('kick', (channel, nick, by, reason) => this.enqueue(network, channel, 'kick', () => this.kicked(network, conn, channel, nick, by, reason)));
    conn.on('nick', (oldNick, newNick, channels) => {
      if (this.isOurs(network, newNick) || this.isOurs(network, oldNick)) return;
      for (const channel of channels) {
        this.enqueue(network, channel, 'nick', () =>
          this.inPortal(network, channel, async (roomId, encrypted) => {
            await this.ghosts.joinRoom(network, newNick, roomId, encrypted);
            await this.ghosts.leaveRoom(network, oldNick, roomId, `Changed nick to ${newNick}`);
          }),
        );
      }
    });
    conn.on('topic', (channel, topic, by) => {
      if (by && this.isOurs(network, by.split('!')[0]!)) return;
      this.enqueue(network, channel, 'topic', () =>
        this.inPortal(network, channel, async (roomId) => {
          const current = await this.ctx.matrix.state(this.ctx.botUserId, roomId, 'm.room.topic');
          if (current?.topic !== topic) await this.ctx.matrix.sendState(this.ctx.botUserId, roomId, 'm.room.topic', '', { topic });
        }),
      );
    });
    // IRC operators get power level 50 in the portal: ghosts for IRC users, the Matrix user for their own nick.
    conn.on('mode', (channel, _by, mode, adding, argument) => {
      // A key set or changed on IRC is the one everyone joins with from now on.
      if (mode === 'k') this.ctx.channelKeys.set(network, channel, adding ? argument : undefined);
      if (mode !== 'o' || !argument || this.ctx.nickKey(argument) === this.ctx.nickKey(conn.nick)) return;
      this.enqueue(network, channel, 'mode', () =>
        this.inPortal(network, channel, async (roomId, encrypted) => {
          const user = this.puppets.userForNick(network, argument) ?? (await this.ghosts.joinRoom(network, argument, roomId, encrypted));
          await this.ctx.matrix.setPowerLevel(this.ctx.botUserId, roomId, user, adding ? OP_LEVEL : 0);
        }),
      );
    });
    // IRCv3 +typing from IRC users: their ghost types in the portal (Matrix clears it by itself after 6 s).
    conn.on('tagmsg', (from, to, tags) => {
      const state = tags.get('+typing') ?? tags.get('+draft/typing');
      if (!state || !isChannelTarget(to) || this.isOurs(network, from)) return;
      this.enqueue(network, to, 'typing', () =>
        this.inPortal(network, to, async (roomId, encrypted) => {
          const ghost = await this.ghosts.joinRoom(network, from, roomId, encrypted);
          await this.ctx.matrix.typing(ghost, roomId, state === 'active');
        }),
      );
    });
    conn.on('saslFailed', (reason) => this.ctx.logger.error({ network, reason }, 'the bridge bot could not log in with SASL; fix networks.<id>.sasl and restart the bridge'));
    // The bot kept out of a channel means IRC messages stop arriving: the portal is told.
    conn.on('serverError', (code, text) => {
      const [channel = '', ...rest] = text.split(' ');
      if (!['471', '473', '474', '475', '477'].includes(code) || !isChannelTarget(channel)) return;
      this.enqueue(network, channel, 'join refused', () =>
        this.inPortal(network, channel, (roomId) =>
          this.ctx.matrix.send(this.ctx.botUserId, roomId, 'm.room.message', { msgtype: 'm.notice', body: `The bridge cannot join ${channel} on IRC (${rest.join(' ') || code}); messages from IRC will not reach this room until it can.` }),
        ),
      );
    });
    conn.on('names', (channel, users) => {
      this.enqueue(network, channel, 'names', () =>
        this.inPortal(network, channel, async (roomId, encrypted) => {
          const present = new Set<string>();
          for (const [nick, prefix] of users) {
            if (this.isOurs(network, nick)) continue;
            const ghost = await this.ghosts.joinRoom(network, nick, roomId, encrypted);
            present.add(ghost);
            if (prefix.includes('@')) await this.ctx.matrix.setPowerLevel(this.ctx.botUserId, roomId, ghost, OP_LEVEL);
          }
          // Whoever left while the bridge was away (or the network split) is not kept in the room.
          for (const userId of (await this.ctx.matrix.members(this.ctx.botUserId, roomId)).keys()) {
            if (present.has(userId) || this.ctx.parseGhost(userId)?.network !== network) continue;
            this.ghosts.noteMembership(roomId, userId, 'leave');
            await this.ctx.matrix.leave(userId, roomId, 'No longer on IRC');
          }
        }),
      );
    });
  }

  private async inPortal(network: string, channel: string, fn: (roomId: string, encrypted: boolean) => Promise<unknown>): Promise<void> {
    const portal = await this.portals().byChannel(network, channel);
    if (portal) await fn(portal.roomId, portal.encrypted);
  }

  private async channelMessage(network: string, kind: IrcMessageKind, from: string, channel: string, text: string): Promise<void> {
    const portal = await this.portals().byChannel(network, channel);
    if (!portal) return;
    const ghost = await this.ghosts.joinRoom(network, from, portal.roomId, portal.encrypted);
    const members = await this.ctx.matrix.members(this.ctx.botUserId, portal.roomId);
    const mentionable: Array<{ nick: string; userId: string }> = [];
    for (const userId of members.keys()) {
      const nick = this.puppets.get(network, userId)?.nick;
      if (nick) mentionable.push({ nick, userId });
    }
    await sendWithRetry(this.ctx.matrix, ghost, portal.roomId, 'm.room.message', ircLineToContent(kind, text, mentionable));
  }

  private async kicked(network: string, bot: IrcConnection, channel: string, nick: string, by: string, reason: string): Promise<void> {
    const portal = await this.portals().byChannel(network, channel);
    if (!portal) return;
    if (this.ctx.nickKey(nick) === this.ctx.nickKey(bot.nick)) {
      // The bridge must stay in the channel to mirror it; it comes back.
      setTimeout(() => void bot.join(channel).catch(() => undefined), 5000).unref();
      return;
    }
    const why = `Kicked on IRC by ${by}${reason ? `: ${reason}` : ''}`;
    const matrixUser = this.puppets.userForNick(network, nick);
    if (matrixUser) {
      await this.ctx.matrix.kick(this.ctx.botUserId, portal.roomId, matrixUser, why).catch(() => undefined);
      return;
    }
    await this.ctx.matrix.kick(this.ctx.botUserId, portal.roomId, this.ctx.ghostId(network, nick), why).catch(() => this.ghosts.leaveRoom(network, nick, portal.roomId, why));
    this.ghosts.noteMembership(portal.roomId, this.ctx.ghostId(network, nick), 'leave');
  }
}
