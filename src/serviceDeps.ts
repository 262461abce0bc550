import type { Logger } from 'pino';
import type { HomeserverConfig } from './config/schema.js';
import type { SigningKey } from './crypto/signing.js';
import type { Database } from './storage/database.js';
import type { Notifier } from './sync/notifier.js';

export interface Clock {
  now(): number;
}

/** What every service is built from (the composition root passes it down). */
export interface ServiceDeps {
  config: HomeserverConfig;
  serverName: string;
  logger: Logger;
  db: Database;
  clock: Clock;
  notifier: Notifier;
  signingKey: SigningKey;
}
