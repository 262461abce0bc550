import type { Logger } from 'pino';
import type { AppserviceRegistration } from './registration.js';
import type { AppserviceRegistry } from './registry.js';

// Spec: Application Service API, "Querying": GET /_matrix/app/v1/users/{userId} and
// /_matrix/app/v1/rooms/{roomAlias}. A 200 means the service has created the user / room alias.

const QUERY_TIMEOUT_MS = 10_000;

export class AppserviceQueries {
  timeoutMs = QUERY_TIMEOUT_MS;

  constructor(
    private readonly registry: AppserviceRegistry,
    private readonly logger: Logger,
  ) {}

  /** Asks the services whose namespace covers `userId`; true when one says it now exists. */
  async queryUser(userId: string): Promise<boolean> {
    for (const reg of this.registry.servicesForUser(userId)) {
      if (await this.query(reg, `/_matrix/app/v1/users/${encodeURIComponent(userId)}`)) return true;
    }
    return false;
  }

  async queryAlias(alias: string): Promise<boolean> {
    for (const reg of this.registry.servicesForAlias(alias)) {
      if (await this.query(reg, `/_matrix/app/v1/rooms/${encodeURIComponent(alias)}`)) return true;
    }
    return false;
  }

  private async query(reg: AppserviceRegistration, path: string): Promise<boolean> {
    if (reg.url === null) return false;
    try {
      const res = await fetch(reg.url + path, {
        headers: { Authorization: `Bearer ${reg.hsToken}` },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.status === 200;
    } catch (err) {
      this.logger.warn({ appservice: reg.id, path, err: (err as Error).message }, 'application service query failed');
      return false;
    }
  }
}
