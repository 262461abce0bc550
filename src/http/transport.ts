import type { Server, ServerOptions } from 'node:http';
import { BlockList, isIPv6, type Socket } from 'node:net';

// Transport limits of every listener: how long a client may take to send a request, and caps on open
// connections counted over every listener of one homeserver, so a client that opens hundreds of slow
// connections (slow-loris) takes only its own share of the server.

export interface HttpTimeouts {
  headers_ms: number;
  /** Until the whole request is received (0 = none); the time to answer it is not limited. */
  request_ms: number;
  keep_alive_ms: number;
}

/** Node server options for these timeouts. */
export function timeoutOptions(t: HttpTimeouts): ServerOptions {
  return {
    headersTimeout: t.headers_ms,
    requestTimeout: t.request_ms,
    keepAliveTimeout: t.keep_alive_ms,
    // Node checks the header and request timeouts on this interval (default 30 s, too coarse for a short timeout).
    connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(t.headers_ms / 4))),
  };
}

export interface ConnectionLimits {
  /** Open connections from one address (IPv6: one /64, what one host usually gets); 0 = no cap. */
  perAddress: number;
  /** Open connections in total; 0 = no cap. */
  total: number;
  /** Addresses and CIDR ranges without a per-address cap (e.g. loopback, where a local proxy connects from). */
  exempt: readonly string[];
}

function blockList(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const range of ranges) {
    const [address = '', bits] = range.split('/');
    const type = isIPv6(address) ? 'ipv6' : 'ipv4';
    list.addSubnet(address, bits === undefined ? (type === 'ipv6' ? 128 : 32) : Number(bits), type);
  }
  return list;
}

/** The first four groups of an IPv6 address (its /64); IPv4 and IPv4-mapped addresses as they are. */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('%')[0]!.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = address.includes('::') && tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

export class ConnectionLimiter {
  private readonly open = new Map<string, number>();
  private total = 0;
  private readonly exempt: BlockList;

  constructor(private readonly limits: ConnectionLimits) {
    this.exempt = blockList(limits.exempt);
  }

  private isExempt(address: string): boolean {
    const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    if (v4 !== undefined) return this.exempt.check(v4, 'ipv4');
    return this.exempt.check(address, isIPv6(address) ? 'ipv6' : 'ipv4');
  }

  /**
   * Counts the server's connections and closes those beyond the caps at once. `perAddress: false` for a
   * listener behind a reverse proxy (x_forwarded), whose connections all come from the proxy.
   */
  attach(server: Server, options: { perAddress: boolean }): void {
    server.on('connection', (socket: Socket) => {
      const address = socket.remoteAddress ?? '';
      const key = options.perAddress && !this.isExempt(address) ? addressKey(address) : undefined;
      const fromKey = key === undefined ? 0 : (this.open.get(key) ?? 0);
      const overTotal = this.limits.total > 0 && this.total >= this.limits.total;
      const overAddress = key !== undefined && this.limits.perAddress > 0 && fromKey >= this.limits.perAddress;
      if (overTotal || overAddress) {
        socket.destroy();
        return;
      }
      this.total++;
      if (key !== undefined) this.open.set(key, fromKey + 1);
      socket.once('close', () => {
        this.total--;
        if (key === undefined) return;
        const left = (this.open.get(key) ?? 1) - 1;
        if (left === 0) this.open.delete(key);
        else this.open.set(key, left);
      });
    });
  }
}
