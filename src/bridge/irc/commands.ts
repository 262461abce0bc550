import type { BridgeContext } from './context.js';
import { isValidChannelName, isValidNick } from './ids.js';
import type { Portals } from './portals.js';
import type { Puppets } from './puppets.js';
import type { IrcRelay } from './ircRelay.js';

const HELP = [
  'Commands (the network can be left out when the bridge has only one):',
  '!help — this list',
  '!nick [network] <nick> — change your IRC nick',
  '!join [network] <#channel> [key] — join an IRC channel (with its key if it has one); you are invited to its room',
  '!part [network] <#channel> — leave an IRC channel',
  '!sasl [network] <account> <password> — log in with SASL from now on (your message is redacted); !sasl [network] off forgets it',
  '!quit [network] — disconnect from IRC',
  '!whois [network] <nick> — who is behind an IRC nick',
];

/** The admin room: one per Matrix user, where they steer their own IRC connections. */
export class AdminCommands {
  constructor(
    private readonly ctx: BridgeContext,
    private readonly puppets: Puppets,
    private readonly portals: Portals,
    private readonly relay: IrcRelay,
  ) {}

  async reply(roomId: string, text: string): Promise<void> {
    await this.ctx.matrix.send(this.ctx.botUserId, roomId, 'm.room.message', { msgtype: 'm.notice', body: text });
  }

  async welcome(roomId: string): Promise<void> {
    await this.reply(roomId, ['This is your IRC bridge admin room.', ...HELP].join('\n'));
  }

  async handle(roomId: string, userId: string, eventId: string, body: string): Promise<void> {
    const text = body.trim();
    if (!text.startsWith('!')) {
      await this.reply(roomId, 'Commands start with "!". Send !help for the list.');
      return;
    }
    const [rawCommand, ...args] = text.split(/\s+/);
    const command = rawCommand!.slice(1).toLowerCase();
    try {
      switch (command) {
        case 'help':
          return await this.reply(roomId, HELP.join('\n'));
        case 'nick':
          return await this.nick(roomId, userId, args);
        case 'join':
          return await this.join(roomId, userId, args);
        case 'part':
          return await this.part(roomId, userId, args);
        case 'sasl':
          return await this.sasl(roomId, userId, eventId, args);
        case 'quit':
          return await this.quit(roomId, userId, args);
        case 'whois':
          return await this.whois(roomId, userId, args);
        default:
          return await this.reply(roomId, `Unknown command !${command}. Send !help for the list.`);
      }
    } catch (err) {
      await this.reply(roomId, `!${command} failed: ${(err as Error).message}`);
    }
  }

  /** Splits off a leading network id; with one network it may be omitted. */
  private network(args: string[], wanted: number): { network: string; rest: string[] } | string {
    const ids = this.ctx.networkIds;
    if (args.length === wanted + 1) {
      return this.ctx.network(args[0]!) ? { network: args[0]!, rest: args.slice(1) } : `Unknown network "${args[0]}" (networks: ${ids.join(', ')}).`;
    }
    if (args.length === wanted) return ids.length === 1 ? { network: ids[0]!, rest: args } : `Name the network first (one of ${ids.join(', ')}).`;
    return 'Wrong number of arguments.';
  }

  private async nick(roomId: string, userId: string, args: string[]): Promise<void> {
    const parsed = this.network(args, 1);
    if (typeof parsed === 'string') return this.reply(roomId, `${parsed} Usage: !nick [network] <nick>`);
    const nick = parsed.rest[0]!;
    const max = this.ctx.network(parsed.network)!.max_nick_length;
    if (!isValidNick(nick, max)) return this.reply(roomId, `"${nick}" is not a valid IRC nick (letters, digits and []\\\`_^{|}-, not starting with a digit or -, at most ${max} characters).`);
    await this.puppets.setNick(parsed.network, userId, nick);
    await this.reply(roomId, `Your nick on ${parsed.network} is now ${nick}${this.puppets.get(parsed.network, userId) ? '' : ' (used when you next connect)'}.`);
  }

  private async join(roomId: string, userId: string, args: string[]): Promise<void> {
    // The channel is the first argument that looks like one: a network id before it, a key (+k) after it.
    const found = args.findIndex((a) => /^[#&]/.test(a));
    const at = found < 0 ? args.length - 1 : found;
    const parsed = args.length - at > 2 ? 'Wrong number of arguments.' : this.network(args.slice(0, at + 1), 1);
    if (typeof parsed === 'string') return this.reply(roomId, `${parsed} Usage: !join [network] <#channel> [key]`);
    const channel = parsed.rest[0]!;
    const key = args[at + 1];
    if (!isValidChannelName(channel)) return this.reply(roomId, `"${channel}" is not an IRC channel name (it starts with #).`);
    if (key !== undefined && !/^[^\s,]{1,64}$/.test(key)) return this.reply(roomId, 'A channel key has no commas and at most 64 characters.');
    const net = this.ctx.network(parsed.network)!;
    const configured = net.channels.some((c) => this.ctx.channelKey(c.channel) === this.ctx.channelKey(channel));
    if (!net.dynamic_channels && !configured) return this.reply(roomId, `${channel} is not bridged on ${parsed.network}.`);
    // Known before the portal exists, so the bridge's own connection can join (and listen) too; a key
    // that does not open the channel is forgotten again, so it cannot spoil a good one.
    const previousKey = this.ctx.channelKeys.get(parsed.network, channel);
    if (key) this.ctx.channelKeys.set(parsed.network, channel, key);
    let portal;
    try {
      portal = await this.portals.ensure(parsed.network, channel);
      // A portal made before the key was known has the bridge's own connection waiting outside: it tries again.
      if (key) await this.relay.listen(parsed.network, channel);
      await this.puppets.join(parsed.network, userId, channel);
    } catch (err) {
      if (key) this.ctx.channelKeys.set(parsed.network, channel, previousKey);
      throw err;
    }
    await this.ctx.matrix.invite(this.ctx.botUserId, portal.roomId, userId);
    await this.reply(roomId, `Joined ${channel} on ${parsed.network}; you are invited to its room ${this.ctx.portalAlias(parsed.network, channel)}.`);
  }

  private async part(roomId: string, userId: string, args: string[]): Promise<void> {
    const parsed = this.network(args, 1);
    if (typeof parsed === 'string') return this.reply(roomId, `${parsed} Usage: !part [network] <#channel>`);
    const channel = parsed.rest[0]!;
    if (!isValidChannelName(channel)) return this.reply(roomId, `"${channel}" is not an IRC channel name.`);
    await this.puppets.part(parsed.network, userId, channel, 'Left from Matrix');
    const portal = await this.portals.byChannel(parsed.network, channel);
    if (portal) await this.ctx.matrix.kick(this.ctx.botUserId, portal.roomId, userId, 'You left the channel with !part').catch(() => undefined);
    await this.reply(roomId, `Left ${channel} on ${parsed.network}.`);
  }

  private async sasl(roomId: string, userId: string, eventId: string, args: string[]): Promise<void> {
    // The password must not stay readable in the room, whatever else happens.
    await this.ctx.matrix.redact(this.ctx.botUserId, roomId, eventId, 'contains a password').catch(() => undefined);
    if (args[args.length - 1]?.toLowerCase() === 'off') {
      const off = this.network(args.slice(0, -1), 0);
      if (typeof off === 'string') return this.reply(roomId, `${off} Usage: !sasl [network] off`);
      await this.puppets.setSasl(off.network, userId, null, null);
      return this.reply(roomId, `SASL is off for ${off.network}; you connect without logging in.`);
    }
    const parsed = this.network(args, 2);
    if (typeof parsed === 'string') return this.reply(roomId, `${parsed} Usage: !sasl [network] <account> <password>`);
    const [account, password] = parsed.rest as [string, string];
    await this.puppets.setSasl(parsed.network, userId, account, password);
    await this.reply(roomId, `SASL account ${account} saved for ${parsed.network}; it is used from your next connection on.`);
  }

  private async quit(roomId: string, userId: string, args: string[]): Promise<void> {
    const parsed = this.network(args, 0);
    if (typeof parsed === 'string') return this.reply(roomId, `${parsed} Usage: !quit [network]`);
    const was = await this.puppets.disconnect(parsed.network, userId, 'Quit from Matrix');
    await this.reply(roomId, was ? `Disconnected from ${parsed.network}. Speaking in a bridged room connects you again.` : `You were not connected to ${parsed.network}.`);
  }

  private async whois(roomId: string, userId: string, args: string[]): Promise<void> {
    const parsed = this.network(args, 1);
    if (typeof parsed === 'string') return this.reply(roomId, `${parsed} Usage: !whois [network] <nick>`);
    const nick = parsed.rest[0]!;
    const conn = this.puppets.get(parsed.network, userId) ?? this.relay.bot(parsed.network);
    if (!conn) return this.reply(roomId, `Not connected to ${parsed.network}.`);
    const info = await conn.whois(nick);
    if (!info) return this.reply(roomId, `${nick} is not on ${parsed.network}.`);
    const matrixUser = this.puppets.userForNick(parsed.network, nick);
    const lines = [
      `${info.nick} is ${info.user ?? '?'}@${info.host ?? '?'}${info.realname ? ` (${info.realname})` : ''}`,
      ...(info.channels?.length ? [`Channels: ${info.channels.join(' ')}`] : []),
      ...(info.account ? [`Logged in as ${info.account}`] : []),
      ...(info.away ? [`Away: ${info.away}`] : []),
      ...(matrixUser ? [`Matrix user: ${matrixUser}`] : []),
    ];
    await this.reply(roomId, lines.join('\n'));
  }
}
