import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

function v4ToBig(ip: string): bigint {
  return ip.split('.').reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

function bigToV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
}

function v6ToBig(ip: string): bigint {
  const [head = '', tail] = ip.split('::');
  const parse = (s: string) => (s ? s.split(':') : []);
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

function bigToV6(n: bigint): string {
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((n >> s) & 0xffffn).toString(16));
  return groups.join(':');
}

/** Whether `value` is an IP address or a CIDR range the bridge can take addresses from. */
export function isBindRange(value: string): boolean {
  const [ip = '', bits] = value.split('/');
  if (bits !== undefined && !/^\d{1,3}$/.test(bits)) return false;
  if (isIPv4(ip)) return bits === undefined || Number(bits) <= 32;
  if (isIPv6(ip)) return bits === undefined || Number(bits) <= 128;
  return false;
}

/**
 * The local address of `who`'s IRC connections: one fixed address per Matrix user out of the range (so a
 * network's per-address limits and bans apply to that user alone), or the single address given.
 */
export function bindAddressFor(range: string, who: string): string {
  const [ip = '', bitsText] = range.split('/');
  const v4 = isIPv4(ip);
  const width = v4 ? 32n : 128n;
  const bits = bitsText === undefined ? width : BigInt(Number(bitsText));
  const hostBits = width - bits;
  if (hostBits === 0n) return ip;
  const base = ((v4 ? v4ToBig(ip) : v6ToBig(ip)) >> hostBits) << hostBits;
  const hash = BigInt(`0x${createHash('sha256').update(who).digest('hex')}`);
  const size = 1n << hostBits;
  // Skip the range's first address (often the host's own, or the network address of a v4 subnet).
  const host = size > 2n ? 1n + (hash % (size - 2n)) : hash % size;
  return v4 ? bigToV4(base + host) : bigToV6(base + host);
}
