import { isIP } from 'node:net';

/** A server name split into its parts (spec appendix "Server Name"). */
export interface ParsedServerName {
  /** Host as written: a DNS name, an IPv4 literal or a bracketed IPv6 literal (`[::1]`). */
  host: string;
  /** The host without IPv6 brackets, ready for connect(). */
  address: string;
  port: number | undefined;
  isIpLiteral: boolean;
}

const SERVER_NAME_RE = /^(\[[0-9A-Fa-f:.]+\]|[0-9A-Za-z.-]{1,255})(?::(\d{1,5}))?$/;

/** Parses `host[:port]`; undefined when it is not a valid server name. */
export function parseServerName(name: string): ParsedServerName | undefined {
  const match = SERVER_NAME_RE.exec(name);
  if (!match) return undefined;
  const host = match[1]!;
  const port = match[2] === undefined ? undefined : Number(match[2]);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  const bracketed = host.startsWith('[');
  const address = bracketed ? host.slice(1, -1) : host;
  if (bracketed && isIP(address) !== 6) return undefined;
  const isIpLiteral = bracketed || isIP(address) === 4;
  // A dotted-decimal that is not a valid IPv4 address (e.g. 999.1.1.1) is not a usable DNS name either.
  if (!isIpLiteral && /^[\d.]+$/.test(host)) return undefined;
  return { host, address, port, isIpLiteral };
}

export function isValidServerName(name: string): boolean {
  return parseServerName(name) !== undefined;
}

/** The server name part of a user ID, room alias or event ID sigil form (`@user:server` → `server`). */
export function serverNameOf(id: string): string | undefined {
  const i = id.indexOf(':');
  if (i < 0) return undefined;
  const server = id.slice(i + 1);
  return isValidServerName(server) ? server : undefined;
}
