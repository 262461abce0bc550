/**
 * m.device_list_update (spec: Server-Server API, "Device Management"): into the remote device-list cache,
 * which applies it when its prev_id follows what we hold and resyncs through GET /user/devices otherwise.
 * Handled in the background, one user at a time: a resync must not hold the sender's transaction.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { RemoteDeviceLists } from '../../e2ee/remoteDeviceLists.js';
import type { EduHandler } from './dispatch.js';
import { fromOrigin } from './sender.js';

const schema = z
  .object({
    user_id: z.string(),
    device_id: z.string(),
    device_display_name: z.string().optional(),
    stream_id: z.number().int(),
    prev_id: z.array(z.number().int()).optional(),
    deleted: z.boolean().optional(),
    keys: z.record(z.string(), z.unknown()).optional(),
  })
  .loose();

export function deviceListUpdateHandler(deps: { remoteDeviceLists: RemoteDeviceLists; logger: Logger }): EduHandler<z.infer<typeof schema>> {
  return {
    type: 'm.device_list_update',
    schema,
    async handle(origin, content) {
      if (!fromOrigin(origin, content.user_id, 'm.device_list_update', deps.logger)) return;
      deps.remoteDeviceLists.onDeviceListUpdate(content).catch((err) => {
        deps.logger.warn({ err, userId: content.user_id }, 'device list update failed');
      });
    },
  };
}
