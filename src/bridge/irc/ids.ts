// Naming between IRC and Matrix: ghost user localparts, portal room aliases, nick validation and generation.

export type IrcCaseMapping = 'ascii' | 'rfc1459' | 'strict-rfc1459';

/** Default prefix of ghost user localparts and portal alias localparts. */
export const DEFAULT_GHOST_PREFIX = 'irc_';

const NETWORK_ID = /^[a-z0-9]+$/;
/** Characters kept verbatim in localparts; `_` and `=` are reserved (separator, escape). */
const LOCALPART_SAFE = /^[a-z0-9.\-/]$/;
const NICK_FIRST = /^[A-Za-z[\]\\`_^{|}]$/;
const NICK_REST = /^[A-Za-z0-9[\]\\`_^{|}-]$/;
const NICK = /^[A-Za-z[\]\\`_^{|}][A-Za-z0-9[\]\\`_^{|}-]*$/;
const CHANNEL_FORBIDDEN = /[ ,\x07\r\n\0]/;
const PATTERN_VARIABLE = /(\$DISPLAY|\$LOCALPART)/;

export function isValidNetworkId(s: string): boolean {
  return NETWORK_ID.test(s);
}

/** Lower-cases per the server's CASEMAPPING so equal nicks/channels get equal Matrix ids. */
export function ircLowerCase(s: string, casemapping: IrcCaseMapping = 'rfc1459'): string {
  let out = '';
  for (const c of s) {
    if (c >= 'A' && c <= 'Z') out += c.toLowerCase();
    else if (casemapping === 'ascii') out += c;
    else if (c === '[') out += '{';
    else if (c === ']') out += '}';
    else if (c === '\\') out += '|';
    else if (c === '~' && casemapping === 'rfc1459') out += '^';
    else out += c;
  }
  return out;
}

/** Reversible, Matrix-localpart-safe encoding: safe ASCII kept, every other UTF-8 byte becomes `=xx`. */
export function escapeForLocalpart(s: string): string {
  let out = '';
  for (const c of s) {
    if (LOCALPART_SAFE.test(c)) {
      out += c;
      continue;
    }
    for (const byte of Buffer.from(c, 'utf8')) out += `=${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** Inverse of escapeForLocalpart; undefined unless `s` is exactly what escapeForLocalpart would produce. */
export function unescapeLocalpart(s: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    const c = s[i] as string;
    if (LOCALPART_SAFE.test(c)) {
      bytes.push(c.charCodeAt(0));
      i++;
      continue;
    }
    const hex = s.slice(i + 1, i + 3);
    if (c !== '=' || !/^[0-9a-f]{2}$/.test(hex)) return undefined;
    bytes.push(parseInt(hex, 16));
    i += 3;
  }
  let decoded: string;
  try {
    decoded = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
  // Reject non-canonical forms (e.g. "=61" for "a") so every string has exactly one encoding.
  return escapeForLocalpart(decoded) === s ? decoded : undefined;
}

export function ghostLocalpart(prefix: string, network: string, nick: string, casemapping: IrcCaseMapping = 'rfc1459'): string {
  return `${prefix}${network}_${escapeForLocalpart(ircLowerCase(nick, casemapping))}`;
}

/** Splits `${prefix}${network}_${rest}` (network ids never contain `_`). */
function splitPrefixed(prefix: string, localpart: string): { network: string; rest: string } | undefined {
  if (!localpart.startsWith(prefix)) return undefined;
  const tail = localpart.slice(prefix.length);
  const sep = tail.indexOf('_');
  if (sep <= 0) return undefined;
  const network = tail.slice(0, sep);
  return isValidNetworkId(network) ? { network, rest: tail.slice(sep + 1) } : undefined;
}

export function parseGhostLocalpart(prefix: string, localpart: string): { network: string; nickLower: string } | undefined {
  const parts = splitPrefixed(prefix, localpart);
  if (parts === undefined || parts.rest === '') return undefined;
  const nickLower = unescapeLocalpart(parts.rest);
  // Ghost localparts are built from lower-cased nicks, so A–Z means it is not one of ours.
  if (nickLower === undefined || /[A-Z]/.test(nickLower)) return undefined;
  return { network: parts.network, nickLower };
}

/**
 * `#foo` → `${prefix}${network}_foo`; other `#…` channels escape everything after the first `#`.
 * Channels not starting with `#` (e.g. `&local`) are fully escaped behind a doubled `_`,
 * which keeps `&foo` distinct from `#&foo`.
 */
export function portalAliasLocalpart(prefix: string, network: string, channel: string, casemapping: IrcCaseMapping = 'rfc1459'): string {
  const lower = ircLowerCase(channel, casemapping);
  if (lower.startsWith('#')) return `${prefix}${network}_${escapeForLocalpart(lower.slice(1))}`;
  return `${prefix}${network}__${escapeForLocalpart(lower)}`;
}

export function parseAliasLocalpart(prefix: string, localpart: string): { network: string; channel: string } | undefined {
  const parts = splitPrefixed(prefix, localpart);
  if (parts === undefined) return undefined;
  const unprefixed = parts.rest.startsWith('_');
  const name = unescapeLocalpart(unprefixed ? parts.rest.slice(1) : parts.rest);
  if (name === undefined || name === '' || /[A-Z]/.test(name)) return undefined;
  // The doubled `_` form is only produced for channels that do not start with `#`.
  if (unprefixed && name.startsWith('#')) return undefined;
  const channel = unprefixed ? name : `#${name}`;
  return channel.length >= 2 && !CHANNEL_FORBIDDEN.test(channel) ? { network: parts.network, channel } : undefined;
}

/** Whether a message target or reply subject is a channel (as opposed to a nick). */
export function isChannelTarget(target: string): boolean {
  return /^[#&!+]/.test(target);
}

export function isValidChannelName(s: string): boolean {
  const len = [...s].length;
  return (s.startsWith('#') || s.startsWith('&')) && len >= 2 && len <= 50 && !CHANNEL_FORBIDDEN.test(s);
}

export function isValidNick(s: string, maxLen: number): boolean {
  return s.length >= 1 && s.length <= maxLen && NICK.test(s);
}

/** Keeps only nick-legal characters; accents are folded first so "Jörg" becomes "Jorg", not "Jrg". */
function sanitizeNickPart(s: string): string {
  let out = '';
  for (const c of s.normalize('NFKD').replace(/\p{M}/gu, '')) if (NICK_REST.test(c)) out += c;
  return out;
}

type PatternPart = { literal: string } | { variable: string };

function patternParts(pattern: string, vars: { displayname?: string; localpart: string }): PatternPart[] {
  const localpart = sanitizeNickPart(vars.localpart);
  const display = sanitizeNickPart(vars.displayname ?? '') || localpart;
  // split() with a capturing group alternates literal text (even indexes) and variable names (odd).
  return pattern.split(PATTERN_VARIABLE).map((chunk, idx): PatternPart => {
    if (idx % 2 === 0) return { literal: sanitizeNickPart(chunk) };
    return { variable: chunk === '$DISPLAY' ? display : localpart };
  });
}

/** Joins parts, cutting variables (left to right) so the literal text of the pattern survives. */
function fitParts(parts: readonly PatternPart[], maxLen: number): string {
  const literalLen = parts.reduce((n, p) => n + ('literal' in p ? p.literal.length : 0), 0);
  let budget = maxLen - literalLen;
  if (budget < 0) return parts.map((p) => ('literal' in p ? p.literal : p.variable)).join('').slice(0, maxLen);
  let out = '';
  for (const p of parts) {
    if ('literal' in p) {
      out += p.literal;
      continue;
    }
    const piece = p.variable.slice(0, budget);
    budget -= piece.length;
    out += piece;
  }
  return out;
}

/** FNV-1a, only to derive a stable fallback nick from a localpart with no usable characters. */
function shortHash(s: string): string {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(s, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h.toString(36);
}

function fallbackNick(localpart: string, maxLen: number): string {
  const clean = sanitizeNickPart(localpart);
  return `M${clean || shortHash(localpart)}`.slice(0, maxLen);
}

/**
 * Builds an IRC nick from a pattern such as `$DISPLAY[m]` or `M-$LOCALPART`.
 * Invalid characters are dropped, a bad first character gets an `M` prefix, and the
 * variable part is shortened to fit `maxLen`; the result is always a valid nick.
 */
export function nickFromPattern(pattern: string, vars: { displayname?: string; localpart: string }, maxLen: number): string {
  if (!(maxLen >= 1)) throw new RangeError(`maxLen must be at least 1, got ${maxLen}`);
  const parts = patternParts(pattern, vars);
  let nick = fitParts(parts, maxLen);
  if (nick !== '' && !NICK_FIRST.test(nick[0] as string)) nick = `M${fitParts(parts, maxLen - 1)}`;
  return isValidNick(nick, maxLen) ? nick : fallbackNick(vars.localpart, maxLen);
}

/**
 * Alternative nick for the `attempt`-th collision: 0 → the nick, 1 → `nick_`, n ≥ 2 → `nickN`,
 * cutting the end of the nick (so a trailing character is replaced) when it would exceed maxLen.
 */
export function nextNickCandidate(nick: string, attempt: number, maxLen: number): string {
  if (!(maxLen >= 2)) throw new RangeError(`maxLen must be at least 2, got ${maxLen}`);
  if (attempt <= 0) return nick.slice(0, maxLen);
  const suffix = attempt === 1 ? '_' : String(Math.floor(attempt));
  // Keep at least one character of the nick so the result never starts with a digit.
  const keep = Math.max(1, maxLen - suffix.length);
  return (nick.slice(0, keep) + suffix).slice(0, maxLen);
}
