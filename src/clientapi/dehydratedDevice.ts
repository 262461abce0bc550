import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { defineRoute, type RouteDefinition } from '../http/route.js';

const PREFIXES = ['/_matrix/client/unstable/org.matrix.msc3814.v1'] as const;
const keyMap = z.record(z.string(), z.union([z.string(), z.record(z.string(), z.unknown())]));

// MSC3814 "Dehydrated Devices with SSSS", under its unstable prefix as current Element uses it.
export function dehydratedDeviceRoutes(services: Services): RouteDefinition[] {
  const dehydrated = services.e2ee.dehydrated;
  return [
    // MSC3814: PUT /dehydrated_device
    defineRoute({
      method: 'PUT',
      prefixes: PREFIXES,
      path: '/dehydrated_device',
      auth: 'user',
      body: z
        .object({
          device_id: z.string().min(1),
          device_data: z.record(z.string(), z.unknown()),
          initial_device_display_name: z.string().optional(),
          device_keys: z.record(z.string(), z.unknown()).optional(),
          one_time_keys: keyMap.optional(),
          fallback_keys: keyMap.optional(),
        })
        .loose(),
      handler: ({ body, requester }) => dehydrated.put(requester.userId, body),
    }),
    // MSC3814: GET /dehydrated_device
    defineRoute({
      method: 'GET',
      prefixes: PREFIXES,
      path: '/dehydrated_device',
      auth: 'user',
      handler: ({ requester }) => dehydrated.get(requester.userId),
    }),
    // MSC3814: DELETE /dehydrated_device
    defineRoute({
      method: 'DELETE',
      prefixes: PREFIXES,
      path: '/dehydrated_device',
      auth: 'user',
      handler: ({ requester }) => dehydrated.delete(requester.userId),
    }),
    // MSC3814: POST /dehydrated_device/{device_id}/events
    defineRoute({
      method: 'POST',
      prefixes: PREFIXES,
      path: '/dehydrated_device/:deviceId/events',
      auth: 'user',
      body: z.object({ next_batch: z.string().optional() }).loose(),
      handler: ({ params, body, requester }) => dehydrated.events(requester.userId, params.deviceId!, body.next_batch),
    }),
  ];
}
