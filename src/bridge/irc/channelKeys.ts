import type { BridgeConfig } from './config.js';
import { ircLowerCase } from './ids.js';

/**
 * Keys of +k channels, per network: from the config's channel mappings, from `!join #chan key`, and
 * from MODE +k the bridge sees. Every join and rejoin (bot and users alike) asks here, so a key learnt
 * late still opens the channel on the next try.
 */
export class ChannelKeys {
  private readonly keys = new Map<string, string>();

  constructor(config: BridgeConfig) {
    for (const [network, net] of Object.entries(config.networks)) for (const c of net.channels) if (c.key) this.set(network, c.channel, c.key);
  }

  get(network: string, channel: string): string | undefined {
    return this.keys.get(`${network}|${ircLowerCase(channel)}`);
  }

  set(network: string, channel: string, key: string | undefined): void {
    if (key) this.keys.set(`${network}|${ircLowerCase(channel)}`, key);
    else this.keys.delete(`${network}|${ircLowerCase(channel)}`);
  }
}

/** Puppet rows keep a channel joined with a key as "#chan key" (channel names have no spaces). */
export function splitChannelEntry(entry: string): { channel: string; key?: string } {
  const [channel = '', key] = entry.split(' ', 2);
  return key ? { channel, key } : { channel };
}
