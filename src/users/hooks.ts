import type { Logger } from 'pino';
import type { Requester } from '../http/route.js';

// Extension points other parts of the server subscribe to. Callbacks run after the change has
// committed; a failing callback is logged and never undoes or fails the request.

export type DevicesDeletedHook = (userId: string, deviceIds: readonly string[]) => void | Promise<void>;
export type DeviceChangedHook = (userId: string, deviceId: string, change: 'created' | 'renamed') => void | Promise<void>;
export type DeactivatedHook = (userId: string, options: { erase: boolean }) => void | Promise<void>;
/** Resolves tokens the user tables do not know (application services); undefined to pass. */
export type TokenAuthenticator = (
  token: string,
  ctx: { ip: string; userAgent: string | undefined; query: Record<string, unknown>; path?: string },
) => Promise<Requester | undefined>;
/**
 * True when registering `userId` must be refused with M_EXCLUSIVE: it lies in an application service's
 * exclusive namespace, or an application service (`appserviceId`) registers outside its own namespaces.
 */
export type ExclusiveNamespaceCheck = (userId: string, appserviceId: string | undefined) => boolean;

export class UserHooks {
  readonly onDevicesDeleted: DevicesDeletedHook[] = [];
  readonly onDeviceChanged: DeviceChangedHook[] = [];
  readonly onDeactivated: DeactivatedHook[] = [];
  readonly authenticators: TokenAuthenticator[] = [];
  readonly exclusiveNamespaces: ExclusiveNamespaceCheck[] = [];

  constructor(private readonly logger: Logger) {}

  async run<A extends unknown[]>(name: string, hooks: ReadonlyArray<(...args: A) => void | Promise<void>>, ...args: A): Promise<void> {
    for (const hook of hooks) {
      try {
        await hook(...args);
      } catch (err) {
        this.logger.error({ err, hook: name }, 'user hook failed');
      }
    }
  }

  isExclusive(userId: string, appserviceId?: string): boolean {
    return this.exclusiveNamespaces.some((check) => check(userId, appserviceId));
  }
}
