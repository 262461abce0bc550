import type { BridgeContext } from './context.js';
import type { Portals } from './portals.js';
import type { Puppets } from './puppets.js';

/**
 * An IRC user invited a Matrix user's nick to a channel: the Matrix user is invited to its portal (from
 * the inviter's ghost when it is in the room, else from the bridge bot). Accepting joins the channel,
 * which the IRC invite lets the user's connection into even when the channel is invite-only.
 */
export class IrcInvites {
  constructor(
    private readonly ctx: BridgeContext,
    private readonly portals: () => Portals,
    private readonly puppets: Puppets,
    private readonly notify: (userId: string, text: string) => void,
  ) {}

  async fromIrc(network: string, userId: string, channel: string, from: string): Promise<void> {
    const net = this.ctx.network(network);
    if (!net) return;
    const configured = net.channels.some((c) => this.ctx.channelKey(c.channel) === this.ctx.channelKey(channel));
    let portal = await this.portals().byChannel(network, channel);
    if (!portal) {
      if (!net.dynamic_channels && !configured) return this.notify(userId, `${from} invited you to ${channel} on ${network}, which this bridge does not bridge.`);
      portal = await this.portals().ensure(network, channel);
    }
    const reason = `${from} invited you to ${channel} on IRC`;
    const members = await this.ctx.matrix.members(this.ctx.botUserId, portal.roomId);
    if (members.get(userId) === 'join') {
      // Already in the room (the channel kept them out before): the invite opens the channel now.
      await this.puppets.join(network, userId, channel);
      return;
    }
    const ghost = this.ctx.ghostId(network, from);
    await this.ctx.matrix.invite(members.get(ghost) === 'join' ? ghost : this.ctx.botUserId, portal.roomId, userId, reason);
    this.notify(userId, `${reason}: accept the invite to ${this.ctx.portalAlias(network, channel)} to join.`);
  }
}
