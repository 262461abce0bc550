/**
 * Server Access Control Lists (spec: Server-Server API, "Server Access Control Lists"; event
 * m.room.server_acl). Pure evaluation of an ACL against a server name, and a checker reading a room's
 * current ACL, used by the inbound pipeline (per PDU of /send), the federation endpoints that serve or
 * accept room data, and (to be wired by the EDU handlers) typing and receipt EDUs.
 */
import { forbidden } from '../errors.js';
import type { Database } from '../storage/database.js';
import { getCurrentStateEventId } from '../storage/repositories/state.js';
import type { Pdu } from '../types/pdu.js';

export interface ServerAclContent {
  allow?: unknown;
  deny?: unknown;
  allow_ip_literals?: unknown;
}

/** The host part of a server name: ports never count for ACLs ("evil.com:8448" is "evil.com"). */
export function hostOf(serverName: string): string {
  if (serverName.startsWith('[')) {
    const end = serverName.indexOf(']');
    return end === -1 ? serverName : serverName.slice(0, end + 1);
  }
  const colon = serverName.lastIndexOf(':');
  return colon === -1 ? serverName : serverName.slice(0, colon);
}

/** IPv4 dotted quad or a bracketed IPv6 literal. */
export function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || /^\[[0-9a-fA-F:.]+\]$/.test(host);
}

/** Case-insensitive glob (spec appendix "Glob-style matching"): `*` any run of characters, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'i');
}

const globCache = new Map<string, RegExp>();
function matchesAny(host: string, list: unknown): boolean {
  if (!Array.isArray(list)) return false;
  for (const g of list) {
    if (typeof g !== 'string') continue;
    let re = globCache.get(g);
    if (!re) {
      re = globToRegExp(g);
      if (globCache.size > 1000) globCache.clear();
      globCache.set(g, re);
    }
    if (re.test(host)) return true;
  }
  return false;
}

/** Spec order: IP literals (when refused), then deny, then allow, otherwise deny. */
export function serverAllowedByAcl(content: ServerAclContent | undefined, serverName: string): boolean {
  if (!content) return true;
  const host = hostOf(serverName);
  const allowIp = typeof content.allow_ip_literals === 'boolean' ? content.allow_ip_literals : true;
  if (!allowIp && isIpLiteral(host)) return false;
  if (matchesAny(host, content.deny)) return false;
  return matchesAny(host, content.allow);
}

export interface AclRooms {
  events: { get(db: Database['knex'], eventId: string): Promise<{ pdu: Pdu; redactedBy: string | null } | undefined> };
}

/** Reads the room's current m.room.server_acl; rooms this server does not know are not restricted here. */
export class ServerAclChecker {
  constructor(private readonly deps: { db: Database; rooms: AclRooms; serverName: string }) {}

  async allowed(roomId: string, serverName: string): Promise<boolean> {
    if (serverName === this.deps.serverName) return true;
    const db = this.deps.db.knex;
    const id = await getCurrentStateEventId(db, roomId, 'm.room.server_acl', '');
    if (!id) return true;
    const ev = await this.deps.rooms.events.get(db, id);
    // A redacted ACL keeps no lists: it denies everyone (spec: allow defaults to the empty list).
    if (!ev) return true;
    return serverAllowedByAcl(ev.redactedBy ? {} : (ev.pdu.content as ServerAclContent), serverName);
  }

  /** Throws 403 M_FORBIDDEN for a server the room's ACL denies. */
  async assertAllowed(roomId: string, serverName: string): Promise<void> {
    if (!(await this.allowed(roomId, serverName))) throw forbidden(`Server ${serverName} is banned from room ${roomId} by its server ACL`);
  }
}
