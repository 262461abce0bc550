import { createHmac } from 'node:crypto';
import { parseDuration, type HomeserverConfig } from '../config/schema.js';

// Spec: "GET /voip/turnServer". With `turn_shared_secret`, credentials follow the TURN REST API
// (draft-uberti-behave-turn-rest): username `<expiry unix seconds>:<user id>`, password
// base64(HMAC-SHA1(secret, username)) — what coturn's `use-auth-secret` checks. Otherwise the static
// `turn_username`/`turn_password`. Without URIs (or credentials) the answer is `{}`, as Synapse gives.

export interface TurnCredentials {
  username: string;
  password: string;
  uris: string[];
  ttl: number;
}

export function turnCredentials(config: HomeserverConfig, userId: string, nowMs: number): TurnCredentials | Record<string, never> {
  if (config.turn_uris.length === 0) return {};
  const ttl = Math.floor(parseDuration(config.turn_user_lifetime) / 1000);
  if (config.turn_shared_secret !== undefined) {
    const username = `${Math.floor(nowMs / 1000) + ttl}:${userId}`;
    const password = createHmac('sha1', config.turn_shared_secret).update(username, 'utf8').digest('base64');
    return { username, password, uris: [...config.turn_uris], ttl };
  }
  if (config.turn_username !== undefined && config.turn_password !== undefined) {
    return { username: config.turn_username, password: config.turn_password, uris: [...config.turn_uris], ttl };
  }
  return {};
}
