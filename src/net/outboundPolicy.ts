/**
 * Which addresses the homeserver may open outbound connections to (Synapse's `ip_range_blacklist` and
 * `ip_range_whitelist`). The check runs on the address actually connected to: IP literals when the socket
 * is created, host names inside the agent's DNS lookup, so a name re-resolved later (DNS rebinding), an
 * SRV or .well-known target or a redirect hop cannot slip past a check made earlier.
 * Every outbound HTTP client except application services (trusted by configuration, as in Synapse) takes
 * its agents from here.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import { Agent as HttpAgent, type AgentOptions as HttpAgentOptions } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https';
import { BlockList, isIP } from 'node:net';
import type { Duplex } from 'node:stream';

/** Synapse's DEFAULT_IP_RANGE_BLOCKLIST: private, loopback, link-local, CGNAT, documentation, benchmarking, multicast. */
export const DEFAULT_IP_RANGE_BLACKLIST: readonly string[] = Object.freeze([
  '127.0.0.0/8',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '192.0.0.0/24',
  '169.254.0.0/16',
  '192.88.99.0/24',
  '198.18.0.0/15',
  '192.0.2.0/24',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '::1/128',
  'fe80::/10',
  'fc00::/7',
  '2001:db8::/32',
  'ff00::/8',
  'fec0::/10',
]);

/** "This host": connecting to it reaches the local machine; blocked whatever the lists say. */
const ALWAYS_BLOCKED = ['0.0.0.0', '::'];

interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** `10.0.0.0/8`, `::1/128`, or a bare address (a single host); throws with a readable message otherwise. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) throw new Error(`invalid IP range '${text}'`);
  const max = version === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(max) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) throw new Error(`invalid IP range '${text}'`);
  return { address, prefix: Number(prefixText), family: version === 4 ? 'ipv4' : 'ipv6' };
}

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

/** The IPv6 spellings of an IPv4 range Synapse also matches: IPv4-compatible, IPv4-mapped and 6to4. */
function ipv6FormsOf(range: Cidr): Cidr[] {
  const [a, b, c, d] = range.address.split('.').map(Number) as [number, number, number, number];
  const hi = hex4((a << 8) | b);
  const lo = hex4((c << 8) | d);
  return [
    { address: `::${hi}:${lo}`, prefix: 96 + range.prefix, family: 'ipv6' },
    { address: `::ffff:${hi}:${lo}`, prefix: 96 + range.prefix, family: 'ipv6' },
    { address: `2002:${hi}:${lo}::`, prefix: 16 + range.prefix, family: 'ipv6' },
  ];
}

function blockListOf(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const text of ranges) {
    const range = parseCidr(text);
    for (const r of range.family === 'ipv4' ? [range, ...ipv6FormsOf(range)] : [range]) list.addSubnet(r.address, r.prefix, r.family);
  }
  return list;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;
type LookupAllFn = (hostname: string, options: LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

export interface OutboundPolicyOptions {
  /** ip_range_blacklist; default DEFAULT_IP_RANGE_BLACKLIST. */
  blacklist?: readonly string[] | undefined;
  /** ip_range_whitelist: exceptions to the blacklist. */
  whitelist?: readonly string[] | undefined;
  /** DNS resolution (tests); default dns.lookup. */
  resolve?: LookupAllFn;
}

/** The error of a refused connection; clients treat it like an unreachable server. */
export class OutboundBlockedError extends Error {
  readonly code = 'EOUTBOUNDBLOCKED';
  constructor(readonly host: string, readonly address: string) {
    super(host === address ? `outbound connection to ${address} is not allowed by ip_range_blacklist` : `${host} resolves to ${address}, which ip_range_blacklist does not allow`);
    this.name = 'OutboundBlockedError';
  }
}

type CreateConnection = (options: Record<string, unknown>, callback: (err: Error | null, socket?: Duplex) => void) => Duplex | undefined;

export class OutboundPolicy {
  private readonly blocked: BlockList;
  private readonly allowed: BlockList;
  private readonly always: BlockList;
  private readonly resolve: LookupAllFn;

  constructor(options: OutboundPolicyOptions = {}) {
    this.blocked = blockListOf(options.blacklist ?? DEFAULT_IP_RANGE_BLACKLIST);
    this.allowed = blockListOf(options.whitelist ?? []);
    this.always = blockListOf(ALWAYS_BLOCKED);
    this.resolve = options.resolve ?? (dnsLookup as unknown as LookupAllFn);
  }

  /** Whether a connection to this IP address (v4 or v6, IPv4-mapped included) may be opened. */
  allows(address: string): boolean {
    const version = isIP(address);
    if (version === 0) return false;
    const family = version === 4 ? 'ipv4' : 'ipv6';
    if (this.always.check(address, family)) return false;
    return !this.blocked.check(address, family) || this.allowed.check(address, family);
  }

  /**
   * A drop-in for dns.lookup on sockets: resolves, and refuses the whole name when any of its addresses is
   * blocked (as Synapse does), so a mixed answer cannot be used to reach an internal address.
   */
  readonly lookup = (hostname: string, options: { all?: boolean; family?: number | string } | number, callback: LookupCallback): void => {
    const opts = typeof options === 'number' ? { family: options } : options;
    const wantAll = opts.all === true;
    this.resolve(hostname, { ...(opts as LookupAllOptions), all: true }, (err, addresses) => {
      if (err) return callback(err, wantAll ? [] : '');
      const bad = addresses.find((a) => !this.allows(a.address));
      if (bad) return callback(new OutboundBlockedError(hostname, bad.address), wantAll ? [] : '');
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), wantAll ? [] : '');
      if (wantAll) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };

  /** An HTTP agent whose every connection passes this policy. */
  httpAgent(options: HttpAgentOptions = {}): HttpAgent {
    return this.guard(new HttpAgent({ ...options, lookup: this.lookup as HttpAgentOptions['lookup'] }));
  }

  /** An HTTPS agent whose every connection passes this policy. */
  httpsAgent(options: HttpsAgentOptions = {}): HttpsAgent {
    return this.guard(new HttpsAgent({ ...options, lookup: this.lookup as HttpsAgentOptions['lookup'] }));
  }

  /** IP literals never reach `lookup` (net connects to them directly), so they are checked as the socket is made. */
  private guard<A extends HttpAgent>(agent: A): A {
    const target = agent as unknown as { createConnection: CreateConnection };
    const create = target.createConnection.bind(agent);
    target.createConnection = (options, callback) => {
      const host = String(options.host ?? 'localhost').replace(/^\[|\]$/g, '');
      if (options.socketPath !== undefined || (isIP(host) !== 0 && !this.allows(host))) {
        const err = new OutboundBlockedError(host, options.socketPath !== undefined ? String(options.socketPath) : host);
        process.nextTick(() => callback(err));
        return undefined;
      }
      return create(options, callback);
    };
    return agent;
  }
}

/** The policy a homeserver's config asks for. */
export function outboundPolicyOf(config: { ip_range_blacklist?: readonly string[] | undefined; ip_range_whitelist?: readonly string[] | undefined }): OutboundPolicy {
  return new OutboundPolicy({ blacklist: config.ip_range_blacklist, whitelist: config.ip_range_whitelist });
}
