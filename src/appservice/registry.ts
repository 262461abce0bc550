import type { AppserviceRegistration, NamespaceEntry } from './registration.js';

// Spec: Application Service API, "Registration" — namespaces decide which users, aliases and rooms a
// service is interested in; exclusive namespaces reserve them for that service alone.

const matches = (entries: readonly NamespaceEntry[], id: string) => entries.some((e) => e.regex.test(id));
const matchesExclusive = (entries: readonly NamespaceEntry[], id: string) => entries.some((e) => e.exclusive && e.regex.test(id));

export class AppserviceRegistry {
  private readonly byToken = new Map<string, AppserviceRegistration>();
  private readonly ids = new Map<string, AppserviceRegistration>();

  constructor(
    private readonly registrations: readonly AppserviceRegistration[],
    private readonly serverName: string,
  ) {
    for (const reg of registrations) {
      this.byToken.set(reg.asToken, reg);
      this.ids.set(reg.id, reg);
    }
  }

  all(): readonly AppserviceRegistration[] {
    return this.registrations;
  }

  byAsToken(token: string): AppserviceRegistration | undefined {
    return this.byToken.get(token);
  }

  byId(id: string): AppserviceRegistration | undefined {
    return this.ids.get(id);
  }

  senderUserId(reg: AppserviceRegistration): string {
    return `@${reg.senderLocalpart}:${this.serverName}`;
  }

  /** The sender, or a user matching the service's user namespace. */
  isInterestedInUser(reg: AppserviceRegistration, userId: string): boolean {
    return userId === this.senderUserId(reg) || matches(reg.namespaces.users, userId);
  }

  isInterestedInAlias(reg: AppserviceRegistration, alias: string): boolean {
    return matches(reg.namespaces.aliases, alias);
  }

  /** Namespace only; membership-based interest is the transaction pusher's business. */
  isInterestedInRoom(reg: AppserviceRegistration, roomId: string): boolean {
    return matches(reg.namespaces.rooms, roomId);
  }

  /** The service holding `userId` in an exclusive user namespace (or as its sender), if any. */
  exclusiveOwner(userId: string): AppserviceRegistration | undefined {
    return this.registrations.find((reg) => userId === this.senderUserId(reg) || matchesExclusive(reg.namespaces.users, userId));
  }

  exclusiveAliasOwner(alias: string): AppserviceRegistration | undefined {
    return this.registrations.find((reg) => matchesExclusive(reg.namespaces.aliases, alias));
  }

  /** Services whose user namespace covers `userId` (candidates for a user query). */
  servicesForUser(userId: string): AppserviceRegistration[] {
    return this.registrations.filter((reg) => matches(reg.namespaces.users, userId));
  }

  servicesForAlias(alias: string): AppserviceRegistration[] {
    return this.registrations.filter((reg) => matches(reg.namespaces.aliases, alias));
  }

  /** The registration owning a Requester (`appserviceId`), if it was authenticated by as_token. */
  isRateLimitExempt(appserviceId: string | undefined): boolean {
    if (appserviceId === undefined) return false;
    const reg = this.ids.get(appserviceId);
    return reg !== undefined && !reg.rateLimited;
  }
}
