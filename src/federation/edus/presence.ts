/** m.presence (spec: Server-Server API, "Presence"): pushed updates, in and out. */
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { PresenceService } from '../../edus/presence.js';
import type { EduHandler } from './dispatch.js';
import type { EduOutbox } from './outbox.js';
import { fromOrigin } from './sender.js';

const update = z
  .object({
    user_id: z.string(),
    presence: z.enum(['online', 'unavailable', 'offline']),
    last_active_ago: z.number().int().nonnegative().optional(),
    status_msg: z.string().max(1024).optional(),
    currently_active: z.boolean().optional(),
  })
  .loose();
const schema = z.object({ push: z.array(z.unknown()).max(1000) }).loose();

export function presenceHandler(deps: { presence: PresenceService; logger: Logger }): EduHandler<z.infer<typeof schema>> {
  return {
    type: 'm.presence',
    schema,
    async handle(origin, content) {
      for (const raw of content.push) {
        const parsed = update.safeParse(raw);
        if (!parsed.success) continue;
        const u = parsed.data;
        if (!fromOrigin(origin, u.user_id, 'm.presence', deps.logger)) continue;
        await deps.presence.receiveRemote(u.user_id, u);
      }
    },
  };
}

/** Sends local users' presence changes to the servers of everyone sharing a room with them. */
export function sendPresence(deps: { presence: PresenceService; outbox: EduOutbox; db: { knex: Knex } }): void {
  deps.presence.onLocalChange.push((userId, c) => {
    const push: Record<string, unknown> = { user_id: userId, presence: c.presence, last_active_ago: c.last_active_ago ?? 0, currently_active: c.currently_active ?? false };
    if (c.status_msg !== undefined) push.status_msg = c.status_msg;
    void deps.outbox.send(async () =>
      [...(await deps.outbox.serversSharingRoomsWith(deps.db.knex, userId))].map((destination) => ({
        destination,
        edu: { edu_type: 'm.presence', content: { push: [push] } },
      })),
    );
  });
}
