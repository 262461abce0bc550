import type { Services } from '../homeserver.js';
import type { RouteDefinition } from '../http/route.js';
import { accountRoutes } from './account.js';
import { adminRoutes } from './admin.js';
import { synapseAdminRoutes } from './admin/index.js';
import { capabilityRoutes } from './capabilities.js';
import { deviceRoutes } from './devices.js';
import { loginRoutes } from './login.js';
import { registerRoutes } from './register.js';
import { dehydratedDeviceRoutes } from './dehydratedDevice.js';
import { directoryRoutes } from './directory.js';
import { keyRoutes } from './keys.js';
import { keyBackupRoutes } from './keyBackup.js';
import { mediaRoutes } from './media.js';
import { membershipRoutes } from './membership.js';
import { profileRoutes } from './profile.js';
import { roomEventRoutes } from './roomEvents.js';
import { roomInitialSyncRoutes } from './roomInitialSync.js';
import { eventStreamRoutes } from './events.js';
import { versionRoutes } from './versions.js';
import { accountDataRoutes } from './accountData.js';
import { filterRoutes } from './filter.js';
import { syncRoutes } from './sync.js';
import { slidingSyncRoutes } from './slidingSync.js';
import { peekRoutes } from './peek.js';
import { presenceRoutes } from './presence.js';
import { receiptRoutes } from './receipts.js';
import { typingRoutes } from './typing.js';
import { notificationRoutes } from './notifications.js';
import { pusherRoutes } from './pushers.js';
import { pushRuleRoutes } from './pushrules.js';
import { relationRoutes } from './relations.js';
import { threadRoutes } from './threads.js';
import { searchRoutes } from './search.js';
import { timestampToEventRoutes } from './timestampToEvent.js';
import { upgradeRoutes } from './upgrade.js';
import { hierarchyRoutes } from './hierarchy.js';
import { knockRoutes } from './knock.js';
import { publicRoomsRoutes } from './publicRooms.js';
import { userDirectoryRoutes } from './userDirectory.js';
import { tagRoutes } from './tags.js';
import { reportingRoutes } from './reporting.js';
import { thirdPartyRoutes, threepidRoutes } from './thirdParty.js';
import { openIdRoutes } from './openid.js';
import { voipRoutes } from './voip.js';
import { loginTokenRoutes } from './loginToken.js';
import { appservicePingRoutes } from './appservicePing.js';

// One file per spec group; each returns its routes given the services.
export function clientRoutes(services: Services): RouteDefinition[] {
  return [
    ...versionRoutes(services),
    ...syncRoutes(services),
    ...slidingSyncRoutes(services),
    ...peekRoutes(services),
    ...filterRoutes(services),
    ...accountDataRoutes(services),
    ...loginRoutes(services),
    ...registerRoutes(services),
    ...accountRoutes(services),
    ...deviceRoutes(services),
    ...capabilityRoutes(services),
    ...adminRoutes(services),
    ...synapseAdminRoutes(services),
    ...membershipRoutes(services),
    ...roomEventRoutes(services),
    ...roomInitialSyncRoutes(services),
    ...eventStreamRoutes(services),
    ...directoryRoutes(services),
    ...keyRoutes(services),
    ...dehydratedDeviceRoutes(services),
    ...keyBackupRoutes(services),
    ...profileRoutes(services),
    ...receiptRoutes(services),
    ...typingRoutes(services),
    ...presenceRoutes(services),
    ...mediaRoutes(services),
    ...pushRuleRoutes(services),
    ...pusherRoutes(services),
    ...notificationRoutes(services),
    ...relationRoutes(services),
    ...threadRoutes(services),
    ...searchRoutes(services),
    ...timestampToEventRoutes(services),
    ...upgradeRoutes(services),
    ...hierarchyRoutes(services),
    ...knockRoutes(services),
    ...publicRoomsRoutes(services),
    ...userDirectoryRoutes(services),
    ...tagRoutes(services),
    ...reportingRoutes(services),
    ...thirdPartyRoutes(services),
    ...threepidRoutes(services),
    ...openIdRoutes(services),
    ...voipRoutes(services),
    ...loginTokenRoutes(services),
    ...appservicePingRoutes(services),
  ];
}
