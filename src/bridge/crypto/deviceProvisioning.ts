/**
 * Creates bridge users and their devices on the homeserver through the application service API: the user
 * with m.login.application_service registration (no login), the device with MSC4190's
 * PUT /devices/{deviceId} as that user.
 */
import { randomInt } from 'node:crypto';
import { MatrixApiError, seg, type HomeserverApi } from '../matrix/homeserverApi.js';

const V3 = '/_matrix/client/v3';

/** Makes sure the user exists (M_USER_IN_USE means it does). */
export async function ensureRegistered(api: HomeserverApi, userId: string): Promise<void> {
  const colon = userId.indexOf(':');
  if (!userId.startsWith('@') || colon < 2) throw new Error(`not a user ID: ${userId}`);
  try {
    await api.request('POST', `${V3}/register`, {
      body: { type: 'm.login.application_service', username: userId.slice(1, colon), inhibit_login: true },
    });
  } catch (err) {
    if (err instanceof MatrixApiError && err.errcode === 'M_USER_IN_USE') return;
    throw err;
  }
}

/** A fresh device ID: ten upper-case letters, as Synapse makes them. */
export function newDeviceId(): string {
  let id = '';
  for (let i = 0; i < 10; i++) id += String.fromCharCode(65 + randomInt(26));
  return id;
}

/** MSC4190: creates (or renames, when it exists) the device `deviceId` of `userId`. */
export async function createDevice(api: HomeserverApi, userId: string, deviceId: string, displayName: string): Promise<void> {
  await api.request('PUT', `${V3}/devices/${seg(deviceId)}`, { userId, body: { display_name: displayName } });
}
