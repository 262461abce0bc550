import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/**
 * The address a request came from. On a listener with `x_forwarded` it is the first X-Forwarded-For
 * entry (the client as the proxy saw it, as Synapse reads it); elsewhere the header is ignored.
 */
export function clientAddress(req: IncomingMessage, trustForwarded: boolean): string {
  const socketAddress = req.socket.remoteAddress ?? 'unknown';
  if (!trustForwarded) return socketAddress;
  const header = req.headers['x-forwarded-for'];
  const first = (Array.isArray(header) ? header[0] : header)?.split(',')[0]?.trim();
  // A value that is not an address (garbage, or an empty header) cannot name a client.
  return first !== undefined && isIP(first) !== 0 ? first : socketAddress;
}
