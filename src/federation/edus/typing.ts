/** m.typing (spec: Server-Server API, "Typing Notifications"): into the typing service, in and out. */
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { TypingService } from '../../edus/typing.js';
import type { EduHandler } from './dispatch.js';
import type { EduOutbox } from './outbox.js';
import { fromOrigin } from './sender.js';

const schema = z.object({ room_id: z.string(), user_id: z.string(), typing: z.boolean() }).loose();

export function typingHandler(deps: { typing: TypingService; logger: Logger; aclAllows(roomId: string, server: string): Promise<boolean> }): EduHandler<z.infer<typeof schema>> {
  return {
    type: 'm.typing',
    schema,
    async handle(origin, c) {
      if (!fromOrigin(origin, c.user_id, 'm.typing', deps.logger)) return;
      // Spec: "Server Access Control Lists" apply to EDUs that name a room.
      if (!(await deps.aclAllows(c.room_id, origin))) return;
      await deps.typing.setRemoteTyping(c.user_id, c.room_id, c.typing);
    },
  };
}

/** Sends local users' typing to the other servers in the room. */
export function sendTyping(deps: { typing: TypingService; outbox: EduOutbox; db: { knex: Knex } }): void {
  deps.typing.onLocalChange.push((roomId, userId, typing) => {
    void deps.outbox.send(async () =>
      [...(await deps.outbox.roomServers(deps.db.knex, roomId))].map((destination) => ({
        destination,
        edu: { edu_type: 'm.typing', content: { room_id: roomId, user_id: userId, typing } },
      })),
    );
  });
}
