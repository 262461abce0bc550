import type { Logger } from 'pino';
import type { Fields, ThirdPartyProvider } from '../directory/thirdParty.js';
import type { AppserviceRegistration } from './registration.js';
import type { AppserviceRegistry } from './registry.js';
import { dict } from '../util/dict.js';

const TIMEOUT_MS = 10_000;

// Spec: Application Service API, "Third-party networks" — /thirdparty/* on the client API is answered by
// the services that declare the protocol in their registration.
export class AppserviceThirdParty implements ThirdPartyProvider {
  constructor(
    private readonly registry: AppserviceRegistry,
    private readonly logger: Logger,
  ) {}

  private servicesFor(protocol: string): AppserviceRegistration[] {
    return this.registry.all().filter((r) => r.url !== null && r.protocols.includes(protocol));
  }

  private async get(reg: AppserviceRegistration, path: string, fields: Fields = {}): Promise<unknown | undefined> {
    const query = new URLSearchParams(fields).toString();
    try {
      const res = await fetch(`${reg.url}${path}${query ? `?${query}` : ''}`, {
        headers: { Authorization: `Bearer ${reg.hsToken}` },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      if (res.status !== 200) return undefined;
      return await res.json();
    } catch (err) {
      this.logger.warn({ appservice: reg.id, path, err: (err as Error).message }, 'application service third-party lookup failed');
      return undefined;
    }
  }

  async protocols(): Promise<Record<string, unknown>> {
    const out = dict<unknown>();
    for (const reg of this.registry.all()) {
      for (const protocol of reg.protocols) {
        if (out[protocol] !== undefined || reg.url === null) continue;
        const meta = await this.get(reg, `/_matrix/app/v1/thirdparty/protocol/${encodeURIComponent(protocol)}`);
        if (meta && typeof meta === 'object') out[protocol] = meta;
      }
    }
    return out;
  }

  async locations(protocol: string, fields: Fields): Promise<unknown[] | undefined> {
    return this.collect(protocol, `/_matrix/app/v1/thirdparty/location/${encodeURIComponent(protocol)}`, fields);
  }

  async users(protocol: string, fields: Fields): Promise<unknown[] | undefined> {
    return this.collect(protocol, `/_matrix/app/v1/thirdparty/user/${encodeURIComponent(protocol)}`, fields);
  }

  async locationsForAlias(alias: string): Promise<unknown[]> {
    return this.collectAll('/_matrix/app/v1/thirdparty/location', { alias });
  }

  async usersForUserId(userId: string): Promise<unknown[]> {
    return this.collectAll('/_matrix/app/v1/thirdparty/user', { userid: userId });
  }

  private async collect(protocol: string, path: string, fields: Fields): Promise<unknown[] | undefined> {
    const services = this.servicesFor(protocol);
    if (!services.length) return undefined;
    const out: unknown[] = [];
    for (const reg of services) {
      const found = await this.get(reg, path, fields);
      if (Array.isArray(found)) out.push(...found);
    }
    return out;
  }

  private async collectAll(path: string, fields: Fields): Promise<unknown[]> {
    const out: unknown[] = [];
    for (const reg of this.registry.all()) {
      if (reg.url === null || reg.protocols.length === 0) continue;
      const found = await this.get(reg, path, fields);
      if (Array.isArray(found)) out.push(...found);
    }
    return out;
  }
}
