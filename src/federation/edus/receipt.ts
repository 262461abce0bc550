/** m.receipt (spec: Server-Server API, "Receipts"): public read receipts, in and out. */
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { ReceiptService } from '../../edus/receipts.js';
import type { EduHandler } from './dispatch.js';
import type { EduOutbox } from './outbox.js';
import { fromOrigin } from './sender.js';

const userReceipt = z
  .object({
    event_ids: z.array(z.string()).min(1),
    data: z.object({ ts: z.number().int(), thread_id: z.string().optional() }).loose(),
  })
  .loose();
// room id → receipt type → user id → receipt
const schema = z.record(z.string(), z.record(z.string(), z.record(z.string(), userReceipt)));

export function receiptHandler(deps: { receipts: ReceiptService; logger: Logger; aclAllows(roomId: string, server: string): Promise<boolean> }): EduHandler<z.infer<typeof schema>> {
  return {
    type: 'm.receipt',
    schema,
    async handle(origin, content) {
      for (const [roomId, byType] of Object.entries(content)) {
        // Spec: "Server Access Control Lists" apply to EDUs that name a room.
        if (!(await deps.aclAllows(roomId, origin))) continue;
        for (const [receiptType, byUser] of Object.entries(byType)) {
          if (receiptType !== 'm.read') continue; // the only public receipt type there is
          for (const [userId, r] of Object.entries(byUser)) {
            if (!fromOrigin(origin, userId, 'm.receipt', deps.logger)) continue;
            // One event per receipt (spec: maxItems 1); the last one if a server sends more.
            const eventId = r.event_ids[r.event_ids.length - 1]!;
            await deps.receipts.receiveRemote({ roomId, userId, receiptType, eventId, threadId: r.data.thread_id, ts: r.data.ts });
          }
        }
      }
    },
  };
}

/** Sends local users' public receipts to the other servers in the room. */
export function sendReceipts(deps: { receipts: ReceiptService; outbox: EduOutbox; db: { knex: Knex } }): void {
  deps.receipts.onLocalReceipt.push((r) => {
    const data: Record<string, unknown> = { ts: r.ts };
    if (r.threadId !== undefined) data.thread_id = r.threadId;
    const content = { [r.roomId]: { [r.receiptType]: { [r.userId]: { event_ids: [r.eventId], data } } } };
    void deps.outbox.send(async () =>
      [...(await deps.outbox.roomServers(deps.db.knex, r.roomId))].map((destination) => ({ destination, edu: { edu_type: 'm.receipt', content } })),
    );
  });
}
