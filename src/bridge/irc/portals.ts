import type { Json } from '../matrix/matrixSide.js';
import type { BridgeContext } from './context.js';
import { isValidChannelName, parseAliasLocalpart } from './ids.js';
import type { Portal } from './store/repositories.js';

const MEGOLM = { algorithm: 'm.megolm.v1.aes-sha2' };

/** Matrix rooms that stand for IRC channels: created on demand by alias, or linked in the config. */
export class Portals {
  private readonly creating = new Map<string, Promise<Portal>>();

  constructor(
    private readonly ctx: BridgeContext,
    /** Makes the network's bot connection join the channel, so its traffic reaches Matrix. */
    private readonly listen: (network: string, channel: string) => Promise<void>,
  ) {}

  byRoom(roomId: string): Promise<Portal | undefined> {
    return this.ctx.store.portals.byRoom(roomId);
  }

  byChannel(network: string, channel: string): Promise<Portal | undefined> {
    return this.ctx.store.portals.byChannel(network, this.ctx.channelKey(channel));
  }

  /** The portal of `channel`, created (with its alias) when missing. */
  async ensure(network: string, channel: string, encrypted?: boolean): Promise<Portal> {
    const existing = await this.byChannel(network, channel);
    if (existing) return existing;
    const key = `${network}|${this.ctx.channelKey(channel)}`;
    let p = this.creating.get(key);
    if (!p) {
      p = this.create(network, channel, encrypted ?? this.ctx.network(network)!.encrypt_portals).finally(() => this.creating.delete(key));
      this.creating.set(key, p);
    }
    return p;
  }

  private async create(network: string, channel: string, encrypted: boolean): Promise<Portal> {
    const alias = this.ctx.portalAlias(network, channel);
    const localpart = alias.slice(1, alias.indexOf(':'));
    const bot = this.ctx.botUserId;
    if (encrypted) await this.ctx.matrix.ensureDevice(bot);
    const body: Json = {
      preset: 'public_chat',
      visibility: 'private',
      room_alias_name: localpart,
      name: channel,
      topic: `${channel} on ${this.ctx.network(network)!.name ?? network} (IRC)`,
      power_level_content_override: { users: { [bot]: 100 }, events_default: 0, state_default: 50, invite: 0 },
      initial_state: [
        // Bridge state (MSC2346): tells clients which network this room mirrors.
        {
          type: 'm.bridge',
          state_key: `org.skjol.irc://${network}/${channel}`,
          content: { bridgebot: bot, protocol: { id: 'irc', displayname: 'IRC' }, network: { id: network, displayname: this.ctx.network(network)!.name ?? network }, channel: { id: channel, displayname: channel } },
        },
        ...(encrypted ? [{ type: 'm.room.encryption', state_key: '', content: MEGOLM }] : []),
      ],
    };
    const roomId = await this.ctx.matrix.createRoom(bot, body);
    const portal: Portal = { roomId, network, channel, channelKey: this.ctx.channelKey(channel), encrypted };
    await this.ctx.store.portals.insert(portal);
    if (encrypted) this.ctx.matrix.noteEncryption(roomId, MEGOLM);
    this.ctx.logger.info({ network, channel, roomId, encrypted }, 'portal created');
    await this.listen(network, channel);
    return portal;
  }

  /** Links an existing room (the bot must be invited or allowed to join) to a channel, from the config. */
  async link(network: string, channel: string, roomId: string): Promise<Portal> {
    await this.ctx.matrix.ensureDevice(this.ctx.botUserId);
    await this.ctx.matrix.join(this.ctx.botUserId, roomId);
    const encrypted = Boolean(await this.ctx.matrix.encryptionOf(this.ctx.botUserId, roomId));
    const portal: Portal = { roomId, network, channel, channelKey: this.ctx.channelKey(channel), encrypted };
    await this.ctx.store.portals.insert(portal);
    await this.listen(network, channel);
    return portal;
  }

  /** Application Service API alias query: `#<prefix><network>_<channel>` creates the portal. */
  async onAliasQuery(alias: string): Promise<boolean> {
    const m = /^#([^:]+):(.+)$/.exec(alias);
    if (!m || m[2] !== this.ctx.domain) return false;
    const parsed = parseAliasLocalpart(this.ctx.config.appservice.alias_prefix, m[1]!);
    if (!parsed) return false;
    const network = this.ctx.network(parsed.network);
    if (!network || !isValidChannelName(parsed.channel)) return false;
    const configured = network.channels.find((c) => this.ctx.channelKey(c.channel) === this.ctx.channelKey(parsed.channel));
    if (!network.dynamic_channels && !configured) return false;
    if (await this.byChannel(parsed.network, parsed.channel)) return false; // exists already under another alias state
    await this.ensure(parsed.network, parsed.channel, configured?.encrypted);
    return true;
  }
}
