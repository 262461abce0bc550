import type { ServiceDeps } from '../serviceDeps.js';
import { deleteDeviceE2ee } from '../storage/repositories/e2ee.js';
import type { UserService } from '../users/userService.js';
import { CrossSigningService } from './crossSigning.js';
import { DehydratedDeviceService } from './dehydratedDevices.js';
import { DeviceKeysService } from './deviceKeysService.js';
import { DeviceListService } from './deviceLists.js';
import { ToDeviceService } from './toDevice.js';

export interface E2eeServices {
  deviceLists: DeviceListService;
  deviceKeys: DeviceKeysService;
  crossSigning: CrossSigningService;
  toDevice: ToDeviceService;
  dehydrated: DehydratedDeviceService;
}

/** Builds the E2EE services and subscribes them to device lifecycle events. */
export function createE2ee(deps: ServiceDeps, users: UserService): E2eeServices {
  const deviceLists = new DeviceListService(deps);
  const deviceKeys = new DeviceKeysService(deps, deviceLists);
  const services: E2eeServices = {
    deviceLists,
    deviceKeys,
    dehydrated: new DehydratedDeviceService(deps, deviceKeys, deviceLists),
    crossSigning: new CrossSigningService(deps, users, deviceLists),
    toDevice: new ToDeviceService(deps),
  };
  // A deleted device loses its keys and queue, and everyone sharing a room hears its list changed.
  users.onDevicesDeleted.push(async (userId, deviceIds) => {
    await deps.db.write(async (trx) => {
      await deleteDeviceE2ee(trx, userId, deviceIds);
      await deviceLists.recordChange(trx, userId);
    });
    await deviceLists.notifyChange(userId);
  });
  // A new login is a new device others may need to encrypt for; a renamed one shows a new name in
  // /keys/query (`unsigned.device_display_name`), so others re-fetch it too (as Synapse).
  users.hooks.onDeviceChanged.push(async (userId) => {
    await deviceLists.changed(userId);
  });
  return services;
}
