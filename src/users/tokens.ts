import { createHash, randomBytes } from 'node:crypto';

// Opaque bearer tokens. Only the sha256 of a token is stored or used as a cache key.
export const ACCESS_TOKEN_PREFIX = 'skj_';
export const REFRESH_TOKEN_PREFIX = 'skr_';

export function generateAccessToken(): string {
  return ACCESS_TOKEN_PREFIX + randomBytes(30).toString('base64url');
}

export function generateRefreshToken(): string {
  return REFRESH_TOKEN_PREFIX + randomBytes(30).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
