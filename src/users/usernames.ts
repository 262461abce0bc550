import { randomBytes } from 'node:crypto';

// Spec: Appendices, "User Identifiers". New localparts use the current grammar
//   user_id_char = DIGIT / %x61-7A / "-" / "." / "=" / "_" / "/" / "+"
// while existing (historical) IDs may use any printable ASCII except ':' — those are accepted when
// looking users up, never when creating them.
const LOCALPART = /^[a-z0-9._=\-/+]+$/;
const HISTORICAL_LOCALPART = /^[\x21-\x39\x3b-\x7e]+$/;
/** The whole user ID, sigil and server name included, is at most 255 bytes. */
export const MAX_USER_ID_LENGTH = 255;

export type UsernameProblem = 'empty' | 'invalid_chars' | 'too_long';

export function userIdFor(localpart: string, serverName: string): string {
  return `@${localpart}:${serverName}`;
}

/**
 * Maps a requested username onto a localpart: letters lowercased (the spec lets servers map usernames
 * "in a logical manner"), then checked against the grammar; whitespace is refused, never dropped, as Synapse.
 */
export function normalizeUsername(username: string): string {
  return username.toLowerCase();
}

export function checkLocalpart(localpart: string, serverName: string): UsernameProblem | undefined {
  if (localpart.length === 0) return 'empty';
  if (!LOCALPART.test(localpart)) return 'invalid_chars';
  if (Buffer.byteLength(userIdFor(localpart, serverName), 'utf8') > MAX_USER_ID_LENGTH) return 'too_long';
  return undefined;
}

export function describeProblem(problem: UsernameProblem): string {
  switch (problem) {
    case 'empty':
      return 'User ID cannot be empty';
    case 'invalid_chars':
      return "User ID can only contain characters a-z, 0-9, or '=_-./+'";
    case 'too_long':
      return `User ID may not be longer than ${MAX_USER_ID_LENGTH} characters`;
  }
}

/** True for a localpart that may name an existing user (historical grammar). */
export function isHistoricalLocalpart(localpart: string): boolean {
  return HISTORICAL_LOCALPART.test(localpart);
}

/**
 * Resolves what a client typed at login (`alice`, `@alice:example.org`, `@Alice:example.org`) to a
 * local user ID, or undefined when it names another server or is malformed.
 */
export function parseLoginUser(input: string, serverName: string): string | undefined {
  const value = input.trim();
  if (value.startsWith('@')) {
    const colon = value.indexOf(':');
    if (colon < 0) return undefined;
    const localpart = value.slice(1, colon);
    const server = value.slice(colon + 1);
    if (server !== serverName || !isHistoricalLocalpart(localpart)) return undefined;
    return userIdFor(localpart, serverName);
  }
  if (!isHistoricalLocalpart(value)) return undefined;
  return userIdFor(value, serverName);
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomString(length: number, alphabet: string): string {
  const bytes = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[bytes[i]! % alphabet.length];
  return out;
}

/** A localpart for a registration without a username (and for guests). */
export function generateLocalpart(): string {
  return `u${randomString(11, ALPHABET)}`;
}

/** Device IDs in the style clients expect: ten upper-case letters. */
export function generateDeviceId(): string {
  return randomString(10, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ');
}
