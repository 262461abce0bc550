import { localpartOf } from '../matrix/homeserverApi.js';
import { splitChannelEntry } from './channelKeys.js';
import type { BridgeContext } from './context.js';
import { isChannelTarget, nickFromPattern } from './ids.js';
import { connectionOptions, IrcConnection, type IrcMessageKind } from './ircConnection.js';

export interface PuppetCallbacks {
  /** A private message to a Matrix user's IRC nick. */
  privateMessage(network: string, userId: string, kind: IrcMessageKind, from: string, text: string): void;
  /** Something the Matrix user should read (an error from the IRC server, say). */
  notify(userId: string, text: string): void;
  /** The IRC server refused something the user did in a channel (cannot send, not an operator, banned …). */
  channelError(network: string, userId: string, channel: string, reason: string): void;
  /** The IRC server says a nick the user wrote to is not there. */
  noSuchNick(network: string, userId: string, nick: string): void;
  /**
   * The server refused or closed the user's connection, in its words; `retryInMs` undefined: the bridge
   * stopped trying. Told once per streak and reason, not at every attempt.
   */
  connectionTrouble(network: string, userId: string, reason: string, wasRegistered: boolean, retryInMs: number | undefined): void;
  /** An IRC user invited the Matrix user's nick to a channel. */
  invited(network: string, userId: string, channel: string, from: string): void;
}

const identOf = (userId: string) => (localpartOf(userId).replace(/[^a-z0-9]/gi, '').toLowerCase() || 'matrix').slice(0, 10);

/** One IRC connection per Matrix user and network, with the user's nick, channels and SASL account. */
export class Puppets {
  private readonly connections = new Map<string, IrcConnection>();
  private readonly connecting = new Map<string, Promise<IrcConnection>>();
  private readonly nicks = new Map<string, Map<string, string>>();

  constructor(
    private readonly ctx: BridgeContext,
    private readonly callbacks: PuppetCallbacks,
  ) {}

  get(network: string, userId: string): IrcConnection | undefined {
    return this.connections.get(`${network}|${userId}`);
  }

  /** The Matrix user whose IRC connection has `nick`, if any (echoes and DMs between our own users). */
  userForNick(network: string, nick: string): string | undefined {
    return this.nicks.get(network)?.get(this.ctx.nickKey(nick));
  }

  /** The user's connection, connected (and registered) before it resolves. */
  ensure(network: string, userId: string): Promise<IrcConnection> {
    const key = `${network}|${userId}`;
    const existing = this.connections.get(key);
    if (existing) return existing.whenRegistered().then(() => existing);
    let p = this.connecting.get(key);
    if (!p) {
      p = this.open(network, userId).finally(() => this.connecting.delete(key));
      this.connecting.set(key, p);
    }
    return p;
  }

  private async open(network: string, userId: string): Promise<IrcConnection> {
    const net = this.ctx.network(network);
    if (!net) throw new Error(`unknown network ${network}`);
    const row = await this.ctx.store.puppets.get(userId, network);
    const displayname = await this.ctx.matrix.displayName(userId);
    const nick = row?.nick ?? nickFromPattern(net.nick_pattern, { displayname, localpart: localpartOf(userId) }, net.max_nick_length);
    const sasl = row?.saslAccount && row.saslPassword ? { account: row.saslAccount, password: row.saslPassword } : undefined;
    const identity = { nick, userName: identOf(userId), realName: `${userId} (Matrix)`, sasl };
    const options = connectionOptions(net, identity, this.ctx.logger.child({ network, puppet: userId }), userId);
    const conn = new IrcConnection({ ...options, channelKey: (c) => this.ctx.channelKeys.get(network, c) });
    const key = `${network}|${userId}`;
    this.connections.set(key, conn);
    this.bind(network, userId, conn);
    for (const entry of row?.channels ?? []) {
      const { channel, key } = splitChannelEntry(entry);
      if (key && !this.ctx.channelKeys.get(network, channel)) this.ctx.channelKeys.set(network, channel, key);
      void conn.join(channel).catch(() => undefined);
    }
    await this.ctx.store.puppets.update(userId, network, { connected: true });
    // A network that is down keeps the connection trying (with growing delays); the caller hears of it.
    await conn.connect();
    return conn;
  }

  private bind(network: string, userId: string, conn: IrcConnection): void {
    const nickMap = () => {
      let m = this.nicks.get(network);
      if (!m) this.nicks.set(network, (m = new Map()));
      return m;
    };
    let current: string | undefined;
    const setNick = (nick: string) => {
      if (current) nickMap().delete(this.ctx.nickKey(current));
      current = nick;
      nickMap().set(this.ctx.nickKey(nick), userId);
    };
    setNick(conn.nick);
    conn.on('registered', (nick) => setNick(nick));
    conn.on('nick', (oldNick, newNick) => {
      if (current && this.ctx.nickKey(oldNick) === this.ctx.nickKey(current)) setNick(newNick);
    });
    conn.on('message', (kind, from, to, text) => {
      if (isChannelTarget(to) || !current || this.ctx.nickKey(to) !== this.ctx.nickKey(current)) return;
      this.callbacks.privateMessage(network, userId, kind, from, text);
    });
    conn.on('serverError', (code, text) => {
      const [subject = '', ...rest] = text.split(' ');
      if (code === '401') this.callbacks.noSuchNick(network, userId, subject);
      else if (isChannelTarget(subject)) this.callbacks.channelError(network, userId, subject, rest.join(' ') || code);
      else this.callbacks.notify(userId, `IRC ${network} said (${code}): ${text}`);
    });
    // Once per streak of refusals (each attempt has its own wording), and once more when the bridge gives up.
    let told = false;
    conn.on('registered', () => (told = false));
    conn.on('closed', (reason, wasRegistered, retryInMs) => {
      if (retryInMs === undefined) {
        // Given up: the next message (or !join) starts a fresh connection.
        if (this.connections.get(`${network}|${userId}`) === conn) this.connections.delete(`${network}|${userId}`);
        if (current && nickMap().get(this.ctx.nickKey(current)) === userId) nickMap().delete(this.ctx.nickKey(current));
      }
      if (!reason || (told && retryInMs !== undefined)) return;
      told = true;
      this.callbacks.connectionTrouble(network, userId, reason, wasRegistered, retryInMs);
    });
    conn.on('saslFailed', (reason) => {
      this.callbacks.notify(userId, `SASL login on ${network} failed (${reason}), so you are not connected. Set the account again with !sasl, or connect without it after !sasl off.`);
      void this.disconnect(network, userId, 'SASL failed', true);
    });
    conn.on('invite', (channel, from) => this.callbacks.invited(network, userId, channel, from));
    conn.on('kick', (channel, nick, by, reason) => {
      if (current && this.ctx.nickKey(nick) === this.ctx.nickKey(current)) void this.forgetChannel(network, userId, channel);
      void by;
      void reason;
    });
  }

  async join(network: string, userId: string, channel: string): Promise<IrcConnection> {
    const conn = await this.ensure(network, userId);
    if (!conn.inChannel(channel)) await conn.join(channel);
    const row = await this.ctx.store.puppets.get(userId, network);
    const key = this.ctx.channelKeys.get(network, channel);
    const entry = key ? `${channel} ${key}` : channel;
    const channels = row?.channels ?? [];
    if (!channels.includes(entry)) {
      const others = channels.filter((c) => this.ctx.channelKey(splitChannelEntry(c).channel) !== this.ctx.channelKey(channel));
      await this.ctx.store.puppets.update(userId, network, { channels: [...others, entry] });
    }
    return conn;
  }

  async part(network: string, userId: string, channel: string, reason = ''): Promise<void> {
    await this.get(network, userId)?.part(channel, reason);
    await this.forgetChannel(network, userId, channel);
  }

  private async forgetChannel(network: string, userId: string, channel: string): Promise<void> {
    const row = await this.ctx.store.puppets.get(userId, network);
    if (!row) return;
    await this.ctx.store.puppets.update(userId, network, { channels: row.channels.filter((c) => this.ctx.channelKey(splitChannelEntry(c).channel) !== this.ctx.channelKey(channel)) });
  }

  async setNick(network: string, userId: string, nick: string): Promise<void> {
    await this.ctx.store.puppets.update(userId, network, { nick });
    await this.get(network, userId)?.changeNick(nick);
  }

  /** A new display name gives a new nick, unless the user chose one with !nick. */
  async followDisplayName(network: string, userId: string, displayname: string): Promise<void> {
    const conn = this.get(network, userId);
    const net = this.ctx.network(network);
    if (!conn || !net || (await this.ctx.store.puppets.get(userId, network))?.nick) return;
    const nick = nickFromPattern(net.nick_pattern, { displayname, localpart: localpartOf(userId) }, net.max_nick_length);
    if (this.ctx.nickKey(nick) !== this.ctx.nickKey(conn.nick)) await conn.changeNick(nick);
  }

  /** Stores the SASL account (or forgets it, with null) and reconnects accordingly. */
  async setSasl(network: string, userId: string, account: string | null, password: string | null): Promise<void> {
    await this.ctx.store.puppets.update(userId, network, { saslAccount: account, saslPassword: password });
    if (this.get(network, userId)) {
      await this.disconnect(network, userId, 'Reconnecting', true);
      // Failures are told in the admin room by the connection itself.
      this.ensure(network, userId).catch(() => undefined);
    }
  }

  /** Closes the user's connection; `keep` remembers it should come back after a restart. */
  async disconnect(network: string, userId: string, message = 'Bye', keep = false): Promise<boolean> {
    const key = `${network}|${userId}`;
    const conn = this.connections.get(key);
    this.connections.delete(key);
    if (!keep) await this.ctx.store.puppets.update(userId, network, { connected: false });
    if (!conn) return false;
    const nick = conn.nick;
    await conn.quit(message);
    if (this.nicks.get(network)?.get(this.ctx.nickKey(nick)) === userId) this.nicks.get(network)!.delete(this.ctx.nickKey(nick));
    return true;
  }

  /** Brings back the connections that were up before the bridge stopped. */
  async restore(): Promise<void> {
    for (const row of await this.ctx.store.puppets.connected()) {
      if (!this.ctx.network(row.network)) continue;
      this.ensure(row.network, row.userId).catch((err: Error) => this.ctx.logger.warn({ err: err.message, user: row.userId }, 'could not reconnect puppet'));
    }
  }

  async closeAll(message: string): Promise<void> {
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map((c) => c.quit(message)));
  }
}
