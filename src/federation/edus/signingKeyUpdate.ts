/** m.signing_key_update (spec: Server-Server API, "End-to-End Encryption"): remote cross-signing keys. */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { RemoteDeviceLists } from '../../e2ee/remoteDeviceLists.js';
import type { EduHandler } from './dispatch.js';
import { fromOrigin } from './sender.js';

const key = z.record(z.string(), z.unknown());
const schema = z.object({ user_id: z.string(), master_key: key.optional(), self_signing_key: key.optional() }).loose();

export function signingKeyUpdateHandler(deps: { remoteDeviceLists: RemoteDeviceLists; logger: Logger }): EduHandler<z.infer<typeof schema>> {
  return {
    type: 'm.signing_key_update',
    schema,
    async handle(origin, content) {
      if (!fromOrigin(origin, content.user_id, 'm.signing_key_update', deps.logger)) return;
      deps.remoteDeviceLists.onSigningKeyUpdate(content).catch((err) => {
        deps.logger.warn({ err, userId: content.user_id }, 'signing key update failed');
      });
    },
  };
}
