import type { Socket } from 'node:net';
import { Client, type Message } from 'matrix-org-irc';

const DEFAULT_TIMEOUT_MS = 15_000;
const CHANNEL_PREFIXES = '#&+!';
const NAMES_PREFIXES = /^[~&@%+]+/;

export type IrcEventKind =
  | 'message'
  | 'action'
  | 'notice'
  | 'ctcp'
  | 'join'
  | 'part'
  | 'quit'
  | 'kick'
  | 'nick'
  | 'topic'
  | 'mode'
  | 'invite'
  | 'kill'
  | 'error'
  | 'disconnect';

/**
 * One thing an IrcUser received. Channel names are lowercased (ngircd's CASEMAPPING=ascii) so tests can compare
 * with `===`; nicks keep the case the server sent.
 */
export interface IrcEvent {
  kind: IrcEventKind;
  /**
   * Who did it: sender of message/action/notice/ctcp, the user who joined/parted/quit, the kicker, the old nick
   * of a nick change, the setter of a topic/mode, the inviter. A server name when the server sent it.
   */
  from?: string;
  /** Target of message/action/notice/ctcp or of a user MODE: a channel (lowercased) or a nick (ours for a PM). */
  to?: string;
  /**
   * message/action/notice: the body (ACTION without its CTCP wrapping); ctcp: the CTCP body ('VERSION');
   * part/quit/kick/kill: the reason; topic: the new topic; mode: modes plus args ('+o bob'); error: the reply text.
   */
  text?: string;
  /** The channel (lowercased) for channel messages, join, part, kick, topic, channel mode, invite. */
  channel?: string;
  /** The user the event is about: who joined/parted/quit, who was kicked/invited/killed, the old nick of a rename. */
  nick?: string;
  /** kind 'nick': the new nick. */
  newNick?: string;
  /** kind 'mode': the mode string as sent ('+o', '+nt', '-v+o') and its parameters. */
  modes?: string;
  modeArgs?: string[];
  /** kind 'error': the reply name ('err_chanoprivsneeded', or the bare numeric if unnamed), 'ERROR' or 'netError'. */
  command?: string;
  /** The parsed line, for anything the fields above do not cover; absent for 'disconnect' and 'netError'. */
  raw?: Message;
  /** Date.now() on receipt. */
  at: number;
}

export interface IrcUserOptions {
  /** USER name; defaults to 'skjoltest'. */
  userName?: string;
  /** Real name; defaults to 'Skjol test user <nick>'. */
  realName?: string;
  /** How long to wait for the 001 welcome; default 15 s. */
  timeoutMs?: number;
}

/** What a pending request's reply matcher says about a line: keep waiting (undefined), done, or failed. */
type Outcome<T> = { value: T } | { error: string } | undefined;

function isChannelName(name: string | undefined): name is string {
  return !!name && CHANNEL_PREFIXES.includes(name.charAt(0));
}

function isErrorReply(m: Message): boolean {
  return /^[45]\d\d$/.test(m.rawCommand ?? '');
}

function describeEvent(e: IrcEvent): string {
  const parts: string[] = [e.kind];
  if (e.command) parts.push(e.command);
  if (e.from) parts.push(`from=${e.from}`);
  if (e.to) parts.push(`to=${e.to}`);
  if (e.channel && e.channel !== e.to) parts.push(`channel=${e.channel}`);
  if (e.nick && e.nick !== e.from) parts.push(`nick=${e.nick}`);
  if (e.newNick) parts.push(`newNick=${e.newNick}`);
  if (e.text !== undefined) parts.push(JSON.stringify(e.text));
  return parts.join(' ');
}

/** A real IRC user for tests: a matrix-org-irc Client plus a log of everything it received. */
export class IrcUser {
  readonly client: Client;
  /** Everything received, oldest first; never cleared (use mark() to look only at what comes later). */
  readonly events: IrcEvent[] = [];
  private readonly waiters = new Set<(e: IrcEvent) => void>();
  private closed = false;

  constructor(server: { host: string; port: number }, nick: string, options: IrcUserOptions = {}) {
    this.client = new Client(server.host, nick, {
      port: server.port,
      userName: options.userName ?? 'skjoltest',
      realName: options.realName ?? `Skjol test user ${nick}`,
      autoConnect: false,
      autoRejoin: false,
      retryCount: 0,
      floodProtection: false,
      debug: false,
      showErrors: false,
      stripColors: false,
      family: 4,
      // Never let the library silently pick "nick1" for us: re-sending our own nick is a no-op on ngircd.
      onNickConflict: () => this.client.nick,
    });
    // The Client emits 'error' for every error numeric; an unheard 'error' event would crash the test process.
    this.client.on('error', () => undefined);
    this.client.on('netError', (err) => this.record({ kind: 'error', command: 'netError', text: err.message }));
    this.client.on('raw', (m) => {
      try {
        this.onRaw(m);
      } catch (err) {
        // A bug here must not surface as an uncaught exception from the socket's data handler.
        this.record({ kind: 'error', command: 'harness', text: String(err) });
      }
    });
  }

  /** The nick the server currently knows us by. */
  get nick(): string {
    return this.client.nick;
  }

  /** Index into `events`; pass it to waitFor to only accept events received after this point. */
  mark(): number {
    return this.events.length;
  }

  /** Resolves with the first event (at index >= sinceMark, already logged or future) matching the predicate. */
  waitFor(
    predicate: (e: IrcEvent) => boolean,
    what: string,
    timeoutMs: number = DEFAULT_TIMEOUT_MS,
    sinceMark = 0,
  ): Promise<IrcEvent> {
    for (let i = sinceMark; i < this.events.length; i++) {
      const e = this.events[i]!;
      if (predicate(e)) return Promise.resolve(e);
    }
    return new Promise((resolve, reject) => {
      const waiter = (e: IrcEvent): void => {
        let matched: boolean;
        try {
          matched = predicate(e);
        } catch (err) {
          done();
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (matched) {
          done();
          resolve(e);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.nick}: no ${what} within ${timeoutMs} ms; ${this.recent(sinceMark)}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
    });
  }

  say(target: string, text: string): Promise<void> {
    return this.client.say(target, text);
  }

  action(target: string, text: string): Promise<void> {
    return this.client.action(target, text);
  }

  notice(target: string, text: string): Promise<void> {
    return this.client.notice(target, text);
  }

  /** Any raw command, e.g. send('KICK', '#room', 'bob', 'bye'); a last argument with spaces gets its ':'. */
  send(...command: string[]): Promise<void> {
    return this.client.send(...command);
  }

  /** JOIN; resolves when the server echoes our JOIN, rejects on an error reply about that channel. */
  join(channel: string, key?: string): Promise<void> {
    const chan = this.lower(channel);
    return this.request(
      `JOIN ${channel}`,
      () => (key === undefined ? this.client.send('JOIN', channel) : this.client.send('JOIN', channel, key)),
      (m) => {
        if (m.command === 'JOIN' && this.sameNick(m.nick, this.nick) && this.lower(m.args[0] ?? '') === chan) {
          return { value: undefined };
        }
        return this.errorAbout(m, chan);
      },
    );
  }

  /** PART; resolves when the server echoes our PART. */
  part(channel: string, reason?: string): Promise<void> {
    const chan = this.lower(channel);
    return this.request(
      `PART ${channel}`,
      () => (reason === undefined ? this.client.send('PART', channel) : this.client.send('PART', channel, reason)),
      (m) => {
        if (m.command === 'PART' && this.sameNick(m.nick, this.nick) && this.lower(m.args[0] ?? '') === chan) {
          return { value: undefined };
        }
        return this.errorAbout(m, chan);
      },
    );
  }

  /** NICK; resolves when the server confirms, rejects on nick-in-use, erroneous nick, +N channel etc. */
  changeNick(newNick: string): Promise<void> {
    const oldNick = this.nick;
    return this.request(
      `NICK ${newNick}`,
      () => this.client.send('NICK', newNick),
      (m) => {
        if (m.command === 'NICK' && this.sameNick(m.nick, oldNick)) return { value: undefined };
        // 447 = can't change nick on a +N channel, 484 = restricted connection; neither names the nick.
        if (isErrorReply(m) && (this.sameNick(m.args[1], newNick) || m.rawCommand === '447' || m.rawCommand === '484')) {
          return { error: `${m.command}: ${m.args.slice(1).join(' ')}` };
        }
        return undefined;
      },
    );
  }

  /** TOPIC; fire-and-forget (wait for the 'topic' event or an 'error' to see the outcome). */
  topic(channel: string, text: string): Promise<void> {
    return this.client.send('TOPIC', channel, text);
  }

  /** Raw MODE, e.g. mode('#room', '+o', 'bob'); fire-and-forget like topic(). */
  mode(target: string, modeString: string, ...args: string[]): Promise<void> {
    return this.client.send('MODE', target, modeString, ...args);
  }

  /** Nicks (without @/+ prefixes) in a channel, from a fresh NAMES reply; works without being a member too. */
  names(channel: string): Promise<string[]> {
    const chan = this.lower(channel);
    const nicks: string[] = [];
    return this.request(
      `NAMES ${channel}`,
      () => this.client.send('NAMES', channel),
      (m) => {
        if (m.command === 'rpl_namreply' && this.lower(m.args[2] ?? '') === chan) {
          for (const entry of (m.args[3] ?? '').trim().split(/\s+/)) {
            if (entry) nicks.push(entry.replace(NAMES_PREFIXES, ''));
          }
        }
        if (m.command === 'rpl_endofnames' && this.lower(m.args[1] ?? '') === chan) return { value: nicks };
        return undefined;
      },
    );
  }

  /** WHOIS; true if the server knows a user by that nick. */
  whoisExists(nick: string): Promise<boolean> {
    let seen = false;
    return this.request(
      `WHOIS ${nick}`,
      () => this.client.send('WHOIS', nick),
      (m) => {
        if (!this.sameNick(m.args[1], nick)) return undefined;
        if (m.command === 'rpl_whoisuser') seen = true;
        if (m.command === 'err_nosuchnick') return { value: false };
        if (m.command === 'rpl_endofwhois') return { value: seen };
        return undefined;
      },
    );
  }

  /** QUIT and wait for the socket to close (destroyed after 5 s); a no-op once disconnected. */
  async disconnect(message = 'test over'): Promise<void> {
    const conn = this.socket();
    if (this.closed || !conn || conn.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => conn.destroy(), 5_000);
      conn.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.client.disconnect(message);
    });
  }

  /** Connects and resolves at the 001 welcome; rejects (and drops the socket) on any error before that. */
  register(timeoutMs: number = DEFAULT_TIMEOUT_MS): Promise<void> {
    // The library swaps in a random nick after 432 before we see it; report the one the test asked for.
    const requested = this.nick;
    return new Promise<void>((resolve, reject) => {
      const onRegistered = (): void => {
        cleanup();
        resolve();
      };
      const onRaw = (m: Message): void => {
        if (m.command === 'ERROR' || isErrorReply(m)) fail(`${m.command}: ${m.args.join(' ')}`);
      };
      const onClose = (): void => fail('connection closed before registration');
      const timer = setTimeout(() => fail(`no welcome within ${timeoutMs} ms`), timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.client.removeListener('registered', onRegistered);
        this.client.removeListener('raw', onRaw);
        this.socket()?.removeListener('close', onClose);
      };
      const fail = (why: string): void => {
        cleanup();
        this.socket()?.destroy();
        reject(new Error(`IRC user ${requested} could not register: ${why}; ${this.recent(0)}`));
      };
      this.client.once('registered', onRegistered);
      this.client.on('raw', onRaw);
      this.client.connect();
      const conn = this.socket();
      conn?.on('close', () => {
        this.closed = true;
        this.record({ kind: 'disconnect' });
      });
      conn?.once('close', onClose);
    });
  }

  private onRaw(m: Message): void {
    const args = m.args;
    const from = m.nick || m.server || m.prefix;
    switch (m.command) {
      case 'PRIVMSG':
      case 'NOTICE': {
        const target = args[0] ?? '';
        const to = isChannelName(target) ? this.lower(target) : target;
        const channel = isChannelName(target) ? to : undefined;
        const text = args[1] ?? '';
        const ctcp = /^\u0001([^\u0001]*)\u0001?$/.exec(text);
        if (ctcp && m.command === 'PRIVMSG' && ctcp[1]!.startsWith('ACTION ')) {
          this.record({ kind: 'action', from, to, channel, text: ctcp[1]!.slice('ACTION '.length), raw: m });
        } else if (ctcp) {
          this.record({ kind: 'ctcp', from, to, channel, text: ctcp[1], raw: m });
        } else {
          this.record({ kind: m.command === 'PRIVMSG' ? 'message' : 'notice', from, to, channel, text, raw: m });
        }
        return;
      }
      case 'JOIN':
        this.record({ kind: 'join', from, nick: m.nick, channel: this.lower(args[0] ?? ''), raw: m });
        return;
      case 'PART':
        this.record({ kind: 'part', from, nick: m.nick, channel: this.lower(args[0] ?? ''), text: args[1], raw: m });
        return;
      case 'QUIT':
        this.record({ kind: 'quit', from, nick: m.nick, text: args[0], raw: m });
        return;
      case 'KICK':
        this.record({ kind: 'kick', from, nick: args[1], channel: this.lower(args[0] ?? ''), text: args[2], raw: m });
        return;
      case 'NICK':
        this.record({ kind: 'nick', from, nick: m.nick, newNick: args[0], raw: m });
        return;
      case 'TOPIC':
        this.record({ kind: 'topic', from, channel: this.lower(args[0] ?? ''), text: args[1], raw: m });
        return;
      case 'MODE': {
        const target = args[0] ?? '';
        const onChannel = isChannelName(target);
        this.record({
          kind: 'mode',
          from,
          to: onChannel ? this.lower(target) : target,
          channel: onChannel ? this.lower(target) : undefined,
          modes: args[1],
          modeArgs: args.slice(2),
          text: args.slice(1).join(' '),
          raw: m,
        });
        return;
      }
      case 'INVITE':
        this.record({ kind: 'invite', from, nick: args[0], channel: this.lower(args[1] ?? ''), raw: m });
        return;
      case 'KILL':
        this.record({ kind: 'kill', from, nick: args[0], text: args[1], raw: m });
        return;
      case 'ERROR':
        this.record({ kind: 'error', from, command: 'ERROR', text: args[0], raw: m });
        return;
      default:
        // Error numerics: args[0] is our own nick, the rest says what went wrong.
        if (isErrorReply(m)) this.record({ kind: 'error', from, command: m.command, text: args.slice(1).join(' '), raw: m });
    }
  }

  private record(event: Omit<IrcEvent, 'at'>): void {
    // Drop undefined fields so toEqual in tests and timeout dumps see only what is there.
    const e = Object.fromEntries(
      Object.entries({ ...event, at: Date.now() }).filter(([, value]) => value !== undefined),
    ) as unknown as IrcEvent;
    this.events.push(e);
    for (const waiter of [...this.waiters]) waiter(e);
  }

  /** Sends a command and resolves/rejects on the first raw line the matcher decides on; fails fast on disconnect. */
  private request<T>(what: string, send: () => Promise<void>, match: (m: Message) => Outcome<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onRaw = (m: Message): void => {
        const outcome = match(m);
        if (!outcome) return;
        cleanup();
        if ('error' in outcome) reject(new Error(`${this.nick}: ${what} failed: ${outcome.error}`));
        else resolve(outcome.value);
      };
      const onClose = (): void => {
        cleanup();
        reject(new Error(`${this.nick}: connection closed while waiting for ${what}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.nick}: no reply to ${what} within ${DEFAULT_TIMEOUT_MS} ms; ${this.recent(0)}`));
      }, DEFAULT_TIMEOUT_MS);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.client.removeListener('raw', onRaw);
        this.socket()?.removeListener('close', onClose);
      };
      if (this.closed) {
        cleanup();
        reject(new Error(`${this.nick}: not connected, cannot ${what}`));
        return;
      }
      this.client.on('raw', onRaw);
      this.socket()?.once('close', onClose);
      send().catch((err: unknown) => {
        cleanup();
        reject(err instanceof Error ? err : new Error(String(err)));
      });
    });
  }

  /** An error numeric whose first parameter is this channel (471/473/474/475/403/405/442/476…). */
  private errorAbout(m: Message, chan: string): Outcome<void> {
    if (isErrorReply(m) && this.lower(m.args[1] ?? '') === chan) {
      return { error: `${m.command}: ${m.args.slice(1).join(' ')}` };
    }
    return undefined;
  }

  private lower(name: string): string {
    return this.client.toLowerCase(name);
  }

  private sameNick(a: string | undefined, b: string): boolean {
    return a !== undefined && this.lower(a) === this.lower(b);
  }

  private socket(): Socket | undefined {
    return this.client.conn as unknown as Socket | undefined;
  }

  private recent(sinceMark: number): string {
    const tail = this.events.slice(Math.max(sinceMark, this.events.length - 15));
    return tail.length ? `last events:\n  ${tail.map(describeEvent).join('\n  ')}` : 'no events received';
  }
}

/** Connects a real IRC user and resolves once it is registered (001); fails instead of taking another nick. */
export async function connectIrcUser(
  server: { host: string; port: number },
  nick: string,
  options: IrcUserOptions = {},
): Promise<IrcUser> {
  const user = new IrcUser(server, nick, options);
  await user.register(options.timeoutMs);
  return user;
}
