import type { Logger } from 'pino';
import type { Fields, ThirdPartyProvider } from '../directory/thirdParty.js';
import type { AppserviceRegistration } from './registration.js';
import type { AppserviceRegistry } from './registry.js';
import { dict, own } from '../util/dict.js';

const TIMEOUT_MS = 10_000;
const PROTOCOL_CACHE_MS = 3600_000;

// Spec: Application Service API, "Third-party networks" — /thirdparty/* on the client API is answered by
// the services that declare the protocol in their registration.
export class AppserviceThirdParty implements ThirdPartyProvider {
  private readonly protocolCache = new Map<string, { meta: Record<string, unknown> & { instances: unknown[] }; until: number }>();

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
      if (reg.url === null) continue;
      for (const protocol of reg.protocols) {
        const meta = await this.protocolOf(reg, protocol);
        if (!meta) continue;
        // As Synapse: the first service's answer, with the instances of every service declaring the protocol.
        const seen = own(out, protocol) as { instances?: unknown[] } | undefined;
        if (!seen) out[protocol] = { ...meta, instances: [...meta.instances] };
        else seen.instances = [...(seen.instances ?? []), ...meta.instances];
      }
    }
    return out;
  }

  /** One service's metadata of a protocol, kept for an hour (as Synapse's protocol_meta_cache); undefined if unusable. */
  private async protocolOf(reg: AppserviceRegistration, protocol: string): Promise<(Record<string, unknown> & { instances: unknown[] }) | undefined> {
    const key = `${reg.id}\u0000${protocol}`;
    const cached = this.protocolCache.get(key);
    if (cached && cached.until > Date.now()) return cached.meta;
    const meta = await this.get(reg, `/_matrix/app/v1/thirdparty/protocol/${encodeURIComponent(protocol)}`);
    if (!meta || typeof meta !== 'object' || Array.isArray(meta)) return undefined;
    const instances = Array.isArray((meta as { instances?: unknown }).instances) ? ((meta as { instances: unknown[] }).instances) : [];
    // An instance naming its network gets the id public room lists take (`<appservice id>|<network id>`).
    const withIds = instances.map((i) =>
      i && typeof i === 'object' && typeof (i as { network_id?: unknown }).network_id === 'string'
        ? { ...(i as Record<string, unknown>), instance_id: `${reg.id}|${(i as { network_id: string }).network_id}` }
        : i,
    );
    const result = { ...(meta as Record<string, unknown>), instances: withIds };
    this.protocolCache.set(key, { meta: result, until: Date.now() + PROTOCOL_CACHE_MS });
    return result;
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
