import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Client, type IrcConnection as LibraryConnection, type WhoisResponse } from 'matrix-org-irc';
import type { IrcIdentity, NetworkConfig } from './config.js';
import { bindAddressFor } from './bindAddress.js';
import { Confirmations } from './confirmations.js';
import { nextNickCandidate } from './ids.js';
import { openIrcSocket } from './ircSocket.js';
import { Backoff, IrcRefusedError, type ReconnectSettings } from './reconnectPolicy.js';
import { formatTags, installIrcv3, type TaggedMessage, type Tags } from './ircv3.js';

export interface IrcConnectionOptions {
  host: string;
  port: number;
  tls: boolean;
  tlsInsecure: boolean;
  /** PEM certificates to trust instead of the system roots. */
  tlsCa?: string;
  /** Server password (PASS). */
  password?: string;
  nick: string;
  userName: string;
  realName: string;
  sasl?: { account: string; password: string };
  flood: { burst: number; interval_ms: number };
  /** Picks another nick when the wanted one is taken. */
  nextNick: (nick: string, attempt: number) => string;
  logger: { info(o: object, m: string): void; warn(o: object, m: string): void; debug(o: object, m: string): void };
  /** Local address to connect from (one per Matrix user out of networks.<id>.bind_address). */
  localAddress?: string;
  reconnect: ReconnectSettings;
  /** A Matrix user's connection stops after repeated refusals; the bridge's own never does. */
  mayGiveUp: boolean;
  /** How often channels we are kept out of are tried again. */
  rejoinIntervalMs?: number;
  /** The key of a +k channel, asked at every join and rejoin. */
  channelKey?: (channel: string) => string | undefined;
}

/** Connection options for `identity` on a configured network; `owner` is the Matrix user (none: the bridge bot). */
export function connectionOptions(net: NetworkConfig, identity: IrcIdentity, logger: IrcConnectionOptions['logger'], owner?: string): IrcConnectionOptions {
  return {
    localAddress: net.bind_address ? bindAddressFor(net.bind_address, owner ?? 'the bridge bot') : undefined,
    reconnect: net.reconnect,
    mayGiveUp: owner !== undefined,
    host: net.host,
    port: net.port,
    tls: net.tls,
    tlsInsecure: net.tls_insecure,
    tlsCa: net.tls_ca_file ? readFileSync(net.tls_ca_file, 'utf8') : undefined,
    password: net.password,
    ...identity,
    flood: net.flood,
    nextNick: (n, attempt) => nextNickCandidate(n, attempt, net.max_nick_length),
    logger,
  };
}

export type IrcMessageKind = 'message' | 'action' | 'notice';

export interface IrcConnectionEvents {
  registered: [nick: string];
  disconnected: [];
  /**
   * A connection (attempt) ended: the server's words if it gave any (ERROR, 465 banned, 463 …), whether we had
   * been registered, and when the next attempt is made (undefined: no more attempts).
   */
  closed: [reason: string | undefined, wasRegistered: boolean, retryInMs: number | undefined];
  message: [kind: IrcMessageKind, from: string, to: string, text: string];
  join: [channel: string, nick: string];
  part: [channel: string, nick: string, reason: string];
  quit: [nick: string, reason: string, channels: string[]];
  kick: [channel: string, nick: string, by: string, reason: string];
  nick: [oldNick: string, newNick: string, channels: string[]];
  topic: [channel: string, topic: string, by: string];
  mode: [channel: string, by: string, mode: string, adding: boolean, argument: string | undefined];
  names: [channel: string, users: Map<string, string>];
  /** An IRCv3 TAGMSG (typing notifications and the like), on networks with message-tags. */
  tagmsg: [from: string, to: string, tags: Tags];
  /** Someone invited us to a channel. */
  invite: [channel: string, from: string];
  /** A numeric error the server sent us, e.g. 482 (not channel operator). */
  serverError: [code: string, text: string];
  saslFailed: [reason: string];
}

type Line = { command: 'PRIVMSG' | 'NOTICE' | 'ACTION'; target: string; text: string; done: () => void; fail: (err: Error) => void };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * One IRC connection that stays up: reconnects with growing delays, rejoins its channels, and paces what it
 * sends (a burst, then one line per interval) so the network's flood limits are respected.
 */
export class IrcConnection extends EventEmitter<IrcConnectionEvents> {
  private client: Client | undefined;
  private closed = false;
  private registered = false;
  private attempt = 0;
  private readonly backoff: Backoff;
  /** Why the server is closing the current attempt, in its words. */
  private closingReason: string | undefined;
  /** The current attempt reached the server (a closed port is an outage, not a refusal). */
  private established = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly wanted = new Map<string, string>();
  private readonly queue: Line[] = [];
  private readonly confirmations = new Confirmations<Line>();
  private tokens: number;
  private lastRefill = Date.now();
  private pumping = false;
  private readonly waiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private wantedNick: string;
  private readonly whoisPending = new Map<string, () => void>();

  constructor(private readonly options: IrcConnectionOptions) {
    super();
    this.tokens = options.flood.burst;
    this.wantedNick = options.nick;
    this.backoff = new Backoff(options.reconnect, options.mayGiveUp);
  }

  get nick(): string {
    return this.client?.nick ?? this.wantedNick;
  }

  get isRegistered(): boolean {
    return this.registered;
  }

  /** Whether we are in `channel` right now (per the server). */
  inChannel(channel: string): boolean {
    return Boolean(this.client?.chans.has(this.lower(channel)) || this.client?.chans.has(channel));
  }

  lower(s: string): string {
    return this.client ? this.client.toLowerCase(s) : s.toLowerCase();
  }

  /** Starts connecting; resolves once registered the first time (or rejects after `timeoutMs`). */
  async connect(timeoutMs = 30_000): Promise<void> {
    this.open();
    await this.whenRegistered(timeoutMs);
  }

  whenRegistered(timeoutMs = 30_000): Promise<void> {
    if (this.registered) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('IRC connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not connected to ${this.options.host}:${this.options.port} after ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
    });
  }

  private openSeq = 0;

  private open(): void {
    if (this.closed) return;
    const o = this.options;
    const seq = ++this.openSeq;
    openIrcSocket({ host: o.host, port: o.port, tls: o.tls, tlsInsecure: o.tlsInsecure, tlsCa: o.tlsCa, localAddress: o.localAddress, timeoutMs: 20_000 }).then(
      (socket) => {
        if (this.closed || seq !== this.openSeq) socket.destroy();
        else this.start(socket);
      },
      (err: Error) => {
        if (seq !== this.openSeq) return;
        o.logger.debug({ host: o.host, err: err.message }, 'IRC server not reachable');
        this.established = false;
        this.closingReason = undefined;
        this.lost();
      },
    );
  }

  private start(socket: Socket): void {
    const o = this.options;
    const client = new Client(
      o.host,
      this.wantedNick,
      {
        port: o.port,
        userName: o.sasl ? o.sasl.account : o.userName,
        realName: o.realName,
        password: o.sasl ? o.sasl.password : o.password,
        sasl: Boolean(o.sasl),
        autoConnect: false,
        autoRejoin: false,
        retryCount: 0,
        floodProtection: false,
        stripColors: false,
        debug: false,
        showErrors: false,
        encoding: false,
        onNickConflict: () => {
          this.attempt++;
          return o.nextNick(this.wantedNick, this.attempt);
        },
      },
      undefined,
      // Our socket: the library would write its registration before the server had its say (see ircSocket.ts).
      socket as unknown as LibraryConnection,
    );
    installIrcv3(client, Boolean(o.sasl));
    this.client = client;
    this.closingReason = undefined;
    this.established = true;
    this.bind(client);
    client.connect();
  }

  private bind(client: Client): void {
    const mine = () => client === this.client;
    client.on('registered', () => {
      if (!mine()) return;
      this.registered = true;
      this.backoff.registered();
      this.options.logger.info({ host: this.options.host, nick: client.nick }, 'IRC connection registered');
      for (const channel of this.wanted.values()) void client.join(this.joinArgs(channel));
      this.scheduleRejoins();
      this.emit('registered', client.nick);
      for (const w of this.waiters.splice(0)) w.resolve();
      void this.pump();
    });
    client.on('abort', () => {
      if (!mine()) return;
      this.lost();
    });
    client.on('netError', (err) => {
      if (mine()) this.options.logger.debug({ host: this.options.host, err: err.message }, 'IRC network error');
    });
    client.on('error', (message) => {
      if (!mine()) return;
      const code = String(message.rawCommand ?? message.command ?? '');
      // Banned (K-line), no access from this host, wrong server password: the reason the server closes on.
      if (['463', '464', '465'].includes(code)) this.closingReason ??= message.args.slice(1).join(' ') || code;
      // "No such nick" answering our own WHOIS is the answer, not an error.
      const missing = this.whoisPending.get(this.lower(String(message.args[1] ?? '')));
      if (code === '401' && missing) return missing();
      this.emit('serverError', code, message.args.slice(1).join(' '));
    });
    // SASL that cannot succeed must end the attempt at once: the library would wait for ever (or throw).
    let offered: string[] = [];
    client.on('raw', (m) => {
      if (mine() && m.command === 'ERROR') this.closingReason ??= String(m.args[0] ?? 'ERROR');
      if (mine() && m.command === 'PONG') for (const line of this.confirmations.confirmed(String(m.args[m.args.length - 1] ?? ''))) line.done();
      if (!mine() || !this.options.sasl || m.command !== 'CAP') return;
      const sub = m.args[1];
      const caps = String(m.args[m.args.length - 1] ?? '').split(' ').filter(Boolean);
      if (sub === 'LS') {
        offered = [...offered, ...caps];
        if (m.args[2] === '*') return;
        const sasl = offered.find((c) => c === 'sasl' || c.startsWith('sasl='));
        if (!sasl) this.saslFailed('the server does not offer SASL');
        else if (sasl.includes('=') && !sasl.slice(5).split(',').includes('PLAIN')) this.saslFailed('the server does not offer SASL PLAIN');
      } else if (sub === 'NAK') this.saslFailed('the server refused SASL');
    });
    client.on('sasl_error', (error) => {
      if (mine()) this.saslFailed(`login refused: ${String(error)}`);
    });
    client.on('message', (from, to, text) => mine() && this.emit('message', 'message', from, to, text));
    client.on('action', (from, to, text) => mine() && this.emit('message', 'action', from, to, text));
    client.on('notice', (from, to, text) => mine() && from && this.emit('message', 'notice', from, to, text));
    client.on('join', (channel, nick) => mine() && this.emit('join', channel, nick));
    client.on('part', (channel, nick, reason) => mine() && this.emit('part', channel, nick, reason ?? ''));
    client.on('quit', (nick, reason, channels) => mine() && this.emit('quit', nick, reason ?? '', channels));
    client.on('kick', (channel, nick, by, reason) => {
      if (!mine()) return;
      if (client.toLowerCase(nick) === client.toLowerCase(client.nick)) this.wanted.delete(client.toLowerCase(channel));
      this.emit('kick', channel, nick, by, reason ?? '');
    });
    // matrix-org-irc only renames users who hold a channel prefix (@, +); everyone else is renamed here, so
    // the channel list is right and later QUITs of the new nick are seen in their channels.
    client.on('nick', (oldNick, newNick) => {
      if (!mine()) return;
      const channels: string[] = [];
      for (const [name, chan] of client.chans) {
        if (chan.users.has(oldNick)) {
          chan.users.set(newNick, chan.users.get(oldNick) ?? '');
          chan.users.delete(oldNick);
        }
        if (chan.users.has(newNick)) channels.push(name);
      }
      this.emit('nick', oldNick, newNick, channels);
    });
    client.on('topic', (channel, topic, by) => mine() && this.emit('topic', channel, topic, by));
    client.on('+mode', (channel, by, mode, argument) => mine() && this.emit('mode', channel, by, mode, true, argument));
    client.on('-mode', (channel, by, mode, argument) => mine() && this.emit('mode', channel, by, mode, false, argument));
    client.on('names', (channel, users) => mine() && this.emit('names', channel, users));
    client.on('invite', (channel, from) => mine() && this.emit('invite', channel, from));
    client.on('raw', (m: TaggedMessage) => {
      if (mine() && m.command === 'TAGMSG' && m.nick && m.args[0] && m.tags) this.emit('tagmsg', m.nick, m.args[0], m.tags);
    });
  }

  private rejoinTimer: NodeJS.Timeout | undefined;

  /** Channels we were refused (invite-only, banned …) are tried again now and then, as a user would. */
  private scheduleRejoins(): void {
    clearInterval(this.rejoinTimer);
    this.rejoinTimer = setInterval(() => {
      if (!this.registered || !this.client) return;
      for (const channel of this.wanted.values()) if (!this.inChannel(channel)) void this.client.join(this.joinArgs(channel));
    }, this.options.rejoinIntervalMs ?? 60_000);
    this.rejoinTimer.unref();
  }

  private saslFailed(reason: string): void {
    this.emit('saslFailed', reason);
    void this.quit(`SASL: ${reason}`);
  }

  private lost(): void {
    const wasRegistered = this.registered;
    // The server may close before we read its ERROR (our registration then meets a reset socket): still a refusal.
    const reason = this.closingReason ?? (this.established && !wasRegistered ? 'the server closed the connection before registration' : undefined);
    this.registered = false;
    this.client?.removeAllListeners();
    this.client?.conn?.destroy();
    this.client = undefined;
    if (wasRegistered) this.emit('disconnected');
    if (this.closed) return;
    // Lines the server may not have read are written again after reconnecting, ahead of the rest.
    this.queue.unshift(...this.confirmations.takeUnconfirmed());
    const delay = this.backoff.next(reason, wasRegistered);
    const where = { host: this.options.host, nick: this.wantedNick, reason, delay };
    if (delay === undefined) {
      this.options.logger.warn({ ...where, refusals: this.backoff.refusalCount }, 'IRC keeps refusing the connection; giving up');
      this.closed = true;
      clearInterval(this.rejoinTimer);
      const err = new IrcRefusedError(reason ?? 'connection closed', undefined);
      for (const w of this.waiters.splice(0)) w.reject(err);
      for (const line of this.queue.splice(0)) line.fail(err);
    } else {
      this.options.logger[reason ? 'warn' : 'info'](where, reason ? 'IRC closed the connection; reconnecting' : 'IRC connection lost, reconnecting');
      // Whoever waits for this connection hears the refusal at once, not at their time-out.
      if (reason && !wasRegistered) for (const w of this.waiters.splice(0)) w.reject(new IrcRefusedError(reason, delay));
      this.reconnectTimer = setTimeout(() => this.open(), delay);
    }
    this.emit('closed', reason, wasRegistered, delay);
  }

  /** Joins (and keeps joining after reconnects); resolves when the server confirms. */
  async join(channel: string, timeoutMs = 15_000): Promise<void> {
    this.wanted.set(this.lower(channel), channel);
    await this.whenRegistered(timeoutMs);
    if (this.inChannel(channel)) return;
    const client = this.client!;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        client.off('join', onJoin);
        this.off('serverError', onRefused);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`could not join ${channel}`));
      }, timeoutMs);
      const onJoin = (chan: string, nick: string) => {
        if (client.toLowerCase(chan) === client.toLowerCase(channel) && client.toLowerCase(nick) === client.toLowerCase(client.nick)) {
          done();
          resolve();
        }
      };
      // Full, invite-only, banned, wrong key, needs an account, no such channel: the server's answer, at once.
      const onRefused = (code: string, text: string) => {
        const [subject = '', ...rest] = text.split(' ');
        if (!['403', '405', '471', '473', '474', '475', '477'].includes(code) || client.toLowerCase(subject) !== client.toLowerCase(channel)) return;
        done();
        reject(new Error(`cannot join ${channel}: ${rest.join(' ') || code}`));
      };
      client.on('join', onJoin);
      this.on('serverError', onRefused);
      void client.join(this.joinArgs(channel));
    });
  }

  /** "#chan key" for a +k channel whose key we know (the library splits it into JOIN's two parameters). */
  private joinArgs(channel: string): string {
    const key = this.options.channelKey?.(channel);
    return key ? `${channel} ${key}` : channel;
  }

  async part(channel: string, reason = ''): Promise<void> {
    this.wanted.delete(this.lower(channel));
    if (this.registered && this.inChannel(channel)) await this.client!.part(channel, reason);
  }

  async changeNick(nick: string): Promise<void> {
    this.wantedNick = nick;
    if (this.registered) await this.client!.send('NICK', nick);
  }

  /** Whether the server granted an IRCv3 capability (message-tags …) on this connection. */
  hasCap(cap: string): boolean {
    const caps = (this.client as unknown as { state?: { capabilities?: { userCapabilites?: { caps?: Set<string> } } } } | undefined)?.state?.capabilities?.userCapabilites?.caps;
    return this.registered && Boolean(caps?.has(cap));
  }

  /** A TAGMSG (client tags only, e.g. +typing), when the network has message-tags; otherwise nothing. */
  async tagmsg(target: string, tags: Record<string, string>): Promise<void> {
    if (!this.hasCap('message-tags')) return;
    await this.client!.send(formatTags(tags), 'TAGMSG', target);
  }

  async raw(...args: string[]): Promise<void> {
    await this.whenRegistered();
    await this.client!.send(...args);
  }

  async whois(nick: string, timeoutMs = 10_000): Promise<WhoisResponse | null> {
    await this.whenRegistered(timeoutMs);
    const client = this.client!;
    const key = this.lower(nick);
    return new Promise<WhoisResponse | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      this.whoisPending.set(key, () => {
        clearTimeout(timer);
        resolve(null);
      });
      void client.whois(nick, (info) => {
        clearTimeout(timer);
        resolve(info && (info.user || info.host) ? info : null);
      });
    }).finally(() => setTimeout(() => this.whoisPending.delete(key), 1000));
  }

  /** Queues a line; resolves once the server confirmed reading it (after reconnects, if need be). */
  send(command: Line['command'], target: string, text: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('IRC connection closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ command, target, text, done: resolve, fail: reject });
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length && this.registered && !this.closed) {
        this.refill();
        if (this.tokens < 1) {
          // While pacing a long queue, a PING every few seconds (not one per line: it counts against flood limits too).
          if (Date.now() - this.lastCheckpoint >= 2000) this.checkpoint();
          await sleep(Math.max(10, this.options.flood.interval_ms - (Date.now() - this.lastRefill)));
          continue;
        }
        const line = this.queue[0]!;
        const client = this.client!;
        if (line.command === 'PRIVMSG') await client.say(line.target, line.text);
        else if (line.command === 'NOTICE') await client.notice(line.target, line.text);
        else await client.action(line.target, line.text);
        this.tokens -= 1;
        this.queue.shift();
        this.confirmations.wrote(line);
      }
      this.checkpoint();
    } finally {
      this.pumping = false;
    }
  }

  /** Asks the server to confirm what was written since the last checkpoint. */
  private lastCheckpoint = 0;

  private checkpoint(): void {
    if (!this.registered || !this.client) return;
    const token = this.confirmations.checkpoint();
    if (!token) return;
    this.lastCheckpoint = Date.now();
    void this.client.send('PING', token);
  }

  private refill(): void {
    const interval = this.options.flood.interval_ms;
    if (interval <= 0) {
      this.tokens = this.options.flood.burst;
      return;
    }
    const gained = Math.floor((Date.now() - this.lastRefill) / interval);
    if (gained > 0) {
      this.tokens = Math.min(this.options.flood.burst, this.tokens + gained);
      this.lastRefill += gained * interval;
    }
    if (this.tokens >= this.options.flood.burst) this.lastRefill = Date.now();
  }

  /** Says goodbye and stops reconnecting. */
  async quit(message = 'Bridge closing'): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.rejoinTimer);
    const err = new Error(`IRC connection closed: ${message}`);
    for (const w of this.waiters.splice(0)) w.reject(err);
    // Not confirmed means not delivered as far as anyone knows: the outbox keeps them for the next start.
    for (const line of [...this.confirmations.takeUnconfirmed(), ...this.queue.splice(0)]) line.fail(err);
    const client = this.client;
    this.client = undefined;
    this.registered = false;
    if (!client) return;
    client.removeAllListeners();
    client.on('error', () => undefined);
    client.on('netError', () => undefined);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      try {
        client.disconnect(message, () => {
          clearTimeout(timer);
          resolve();
        });
      } catch {
        clearTimeout(timer);
        resolve();
      }
    });
    client.conn?.destroy();
  }
}
