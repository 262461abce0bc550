/**
 * Creates bridge users' devices on the homeserver through the application service API, with MSC4190's
 * PUT /devices/{deviceId} as that user.
 */
import { randomInt } from 'node:crypto';
import { seg, type HomeserverApi } from '../matrix/homeserverApi.js';

/** A fresh device ID: ten upper-case letters, as Synapse makes them. */
export function newDeviceId(): string {
  let id = '';
  for (let i = 0; i < 10; i++) id += String.fromCharCode(65 + randomInt(26));
  return id;
}

/** MSC4190: creates (or renames, when it exists) the device `deviceId` of `userId`. */
export async function createDevice(api: HomeserverApi, userId: string, deviceId: string, displayName: string): Promise<void> {
  await api.request('PUT', `/_matrix/client/v3/devices/${seg(deviceId)}`, { userId, body: { display_name: displayName } });
}
