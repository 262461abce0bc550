import type { Logger } from 'pino';
import type { MatrixSide } from '../matrix/matrixSide.js';
import { ChannelKeys } from './channelKeys.js';
import type { BridgeConfig, NetworkConfig } from './config.js';
import { ghostLocalpart, ircLowerCase, parseGhostLocalpart, portalAliasLocalpart } from './ids.js';
import type { BridgeStore } from './store/repositories.js';

/** What every part of the bridge shares: config, the Matrix side, the store, naming rules. */
export class BridgeContext {
  /** Keys of +k channels, shared by the bot's and the users' connections. */
  readonly channelKeys: ChannelKeys;

  constructor(
    readonly config: BridgeConfig,
    readonly matrix: MatrixSide,
    readonly store: BridgeStore,
    readonly logger: Logger,
    /** The link IRC users get for an mxc:// URI (./mediaProxy.ts, or the homeserver's legacy path). */
    readonly mediaLink: (mxc: string, name: string) => string | undefined,
  ) {
    this.channelKeys = new ChannelKeys(config);
  }

  get domain(): string {
    return this.config.homeserver.domain;
  }

  get botUserId(): string {
    return this.matrix.botUserId;
  }

  network(id: string): NetworkConfig | undefined {
    return Object.prototype.hasOwnProperty.call(this.config.networks, id) ? this.config.networks[id] : undefined;
  }

  get networkIds(): string[] {
    return Object.keys(this.config.networks);
  }

  ghostId(network: string, nick: string): string {
    return `@${ghostLocalpart(this.config.appservice.user_prefix, network, nick)}:${this.domain}`;
  }

  /** The network and lower-cased nick a ghost id stands for, if it is one of ours. */
  parseGhost(userId: string): { network: string; nickLower: string } | undefined {
    const m = /^@([^:]+):(.+)$/.exec(userId);
    if (!m || m[2] !== this.domain) return undefined;
    const parsed = parseGhostLocalpart(this.config.appservice.user_prefix, m[1]!);
    return parsed && this.network(parsed.network) ? parsed : undefined;
  }

  /** The bot and the ghosts: users whose events must never be bridged back. */
  isBridgeUser(userId: string): boolean {
    if (userId === this.botUserId) return true;
    const m = /^@([^:]+):(.+)$/.exec(userId);
    return Boolean(m && m[2] === this.domain && m[1]!.startsWith(this.config.appservice.user_prefix));
  }

  portalAlias(network: string, channel: string): string {
    return `#${portalAliasLocalpart(this.config.appservice.alias_prefix, network, channel)}:${this.domain}`;
  }

  channelKey(channel: string): string {
    return ircLowerCase(channel);
  }

  nickKey(nick: string): string {
    return ircLowerCase(nick);
  }
}
