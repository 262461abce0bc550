import { notFound } from '../errors.js';
import { own } from '../util/dict.js';

// Spec: Client-Server API, "Third-party networks" (/thirdparty/*). The answers come from application
// services that bridge other networks; the appservice layer plugs a provider in with `setProvider`.
// Without one there are no protocols; a search in an unknown protocol finds nothing (200 [], as Synapse).

export type Fields = Record<string, string>;

export interface ThirdPartyProvider {
  /** Protocol name → protocol metadata (spec: "Protocol"). */
  protocols(): Promise<Record<string, unknown>>;
  /** Portal rooms of a protocol matching `fields`; undefined when the protocol is unknown. */
  locations(protocol: string, fields: Fields): Promise<unknown[] | undefined>;
  /** Users of a protocol matching `fields`; undefined when the protocol is unknown. */
  users(protocol: string, fields: Fields): Promise<unknown[] | undefined>;
  locationsForAlias(alias: string): Promise<unknown[]>;
  usersForUserId(userId: string): Promise<unknown[]>;
}

export class ThirdPartyLookup {
  private provider: ThirdPartyProvider | undefined;

  setProvider(provider: ThirdPartyProvider | undefined): void {
    this.provider = provider;
  }

  async protocols(): Promise<Record<string, unknown>> {
    return (await this.provider?.protocols()) ?? {};
  }

  async protocol(name: string): Promise<unknown> {
    const found = own(await this.protocols(), name);
    if (found === undefined) throw notFound(`Protocol ${name} is not known`);
    return found;
  }

  async locations(protocol: string, fields: Fields): Promise<unknown[]> {
    return (await this.provider?.locations(protocol, fields)) ?? [];
  }

  async users(protocol: string, fields: Fields): Promise<unknown[]> {
    return (await this.provider?.users(protocol, fields)) ?? [];
  }

  async locationsForAlias(alias: string): Promise<unknown[]> {
    return (await this.provider?.locationsForAlias(alias)) ?? [];
  }

  async usersForUserId(userId: string): Promise<unknown[]> {
    return (await this.provider?.usersForUserId(userId)) ?? [];
  }
}
