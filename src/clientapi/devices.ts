import { z } from 'zod';
import { MatrixError, notFound } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, JsonReply, defineRoute, type RouteDefinition } from '../http/route.js';
import type { DeviceRecord } from '../users/userService.js';

/** Synapse's limit, so names that work there work here. */
const MAX_DISPLAY_NAME_LENGTH = 100;

// Spec: "Device management" → the Device object.
function deviceJson(d: DeviceRecord): Record<string, unknown> {
  const out: Record<string, unknown> = { device_id: d.deviceId };
  if (d.displayName !== null) out.display_name = d.displayName;
  if (d.lastSeenIp !== null) out.last_seen_ip = d.lastSeenIp;
  if (d.lastSeenTs !== null) out.last_seen_ts = d.lastSeenTs;
  return out;
}

export function deviceRoutes(services: Services): RouteDefinition[] {
  const { users } = services;
  return [
    // Spec: Client-Server API, "GET /_matrix/client/v3/devices"
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/devices',
      auth: 'user',
      allowGuests: true,
      handler: async ({ requester }) => ({ devices: (await users.listDevices(requester.userId)).map(deviceJson) }),
    }),
    // Spec: Client-Server API, "GET /_matrix/client/v3/devices/{deviceId}"
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/devices/:deviceId',
      auth: 'user',
      allowGuests: true,
      handler: async ({ requester, params }) => {
        const device = await users.getDevice(requester.userId, params.deviceId!);
        if (!device) throw notFound('Unknown device');
        return deviceJson(device);
      },
    }),
    // Spec: Client-Server API, "PUT /_matrix/client/v3/devices/{deviceId}"
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/devices/:deviceId',
      auth: 'user',
      allowGuests: true,
      body: z.looseObject({ display_name: z.string().nullish() }),
      handler: async ({ requester, params, body }) => {
        const deviceId = params.deviceId!;
        // MSC4190: an application service that opted in creates its users' devices with this PUT.
        if (requester.appserviceId !== undefined && services.appservices.byId(requester.appserviceId)?.msc4190) {
          if (body.display_name != null && body.display_name.length > MAX_DISPLAY_NAME_LENGTH) {
            throw new MatrixError('M_TOO_LARGE', `Device display name is too long (max ${MAX_DISPLAY_NAME_LENGTH})`, 400);
          }
          const created = await users.devices.createForAppservice(requester.userId, deviceId, body.display_name ?? null);
          if (created) return new JsonReply(201, {});
        }
        if (body.display_name !== undefined) {
          if (body.display_name !== null && body.display_name.length > MAX_DISPLAY_NAME_LENGTH) {
            throw new MatrixError('M_TOO_LARGE', `Device display name is too long (max ${MAX_DISPLAY_NAME_LENGTH})`, 400);
          }
          await users.devices.rename(requester.userId, deviceId, body.display_name);
        } else if (!(await users.getDevice(requester.userId, deviceId))) {
          throw notFound('Unknown device');
        }
        return {};
      },
    }),
    // Spec: Client-Server API, "DELETE /_matrix/client/v3/devices/{deviceId}" (user-interactive auth)
    defineRoute({
      method: 'DELETE',
      prefixes: CLIENT_V3,
      path: '/devices/:deviceId',
      auth: 'user',
      body: z.looseObject({ auth: z.unknown().optional() }),
      handler: async ({ requester, params, body }) => {
        const deviceId = params.deviceId!;
        await users.deleteDevicesWithAuth(requester, [deviceId], body.auth, `DELETE /devices/${deviceId}`);
        return {};
      },
    }),
    // Spec: Client-Server API, "POST /_matrix/client/v3/delete_devices" (user-interactive auth)
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/delete_devices',
      auth: 'user',
      body: z.looseObject({ devices: z.array(z.string()).max(1000), auth: z.unknown().optional() }),
      handler: async ({ requester, body }) => {
        await users.deleteDevicesWithAuth(requester, body.devices, body.auth, 'POST /delete_devices');
        return {};
      },
    }),
  ];
}
