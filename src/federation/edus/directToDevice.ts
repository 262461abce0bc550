/**
 * m.direct_to_device (spec: Server-Server API, "Send-to-device messaging"): messages from users of the
 * sending server to local devices, delivered through the to-device queue before the transaction is
 * acknowledged, once per (origin, message_id). Outbound: the to-device service's remote sender queues
 * one EDU per destination server and send.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { ToDeviceService } from '../../e2ee/toDevice.js';
import { markToDeviceSeen } from '../../storage/repositories/remoteDevices.js';
import { serverNameOf } from '../serverName.js';
import type { EduHandler } from './dispatch.js';
import type { EduOutbox } from './outbox.js';
import { fromOrigin } from './sender.js';
import { dict } from '../../util/dict.js';

const schema = z
  .object({
    sender: z.string(),
    type: z.string().min(1).max(255),
    message_id: z.string().min(1).max(255),
    messages: z.record(z.string(), z.record(z.string(), z.record(z.string(), z.unknown()))),
  })
  .loose();

export interface DirectToDeviceDeps {
  serverName: string;
  toDevice: ToDeviceService;
  clock: { now(): number };
  logger: Logger;
}

export function directToDeviceHandler(deps: DirectToDeviceDeps): EduHandler<z.infer<typeof schema>> {
  return {
    type: 'm.direct_to_device',
    schema,
    async handle(origin, c) {
      if (!fromOrigin(origin, c.sender, 'm.direct_to_device', deps.logger)) return;
      // Only our own users: a server cannot make us relay messages to a third one.
      const local = dict<Record<string, Record<string, unknown>>>();
      for (const [userId, byDevice] of Object.entries(c.messages)) if (serverNameOf(userId) === deps.serverName) local[userId] = byDevice;
      if (!Object.keys(local).length) return;
      // The message_id is marked seen in the transaction that queues the messages: a crash loses neither
      // the messages nor the mark, so a resend after it is dropped and a resend before it delivers.
      await deps.toDevice.send(c.sender, c.type, local, async (trx, work) => {
        if (await markToDeviceSeen(trx, origin, c.message_id, deps.clock.now())) await work();
      });
    },
  };
}

/** Routes to-device messages for remote users into the outbox, one EDU per server and send. */
export function sendToDevice(deps: { toDevice: ToDeviceService; outbox: EduOutbox }): void {
  deps.toDevice.remoteSender = async (trx, sender, type, messages, server) => {
    const items = [
      {
        destination: server,
        edu: { edu_type: 'm.direct_to_device', content: { sender, type, message_id: randomBytes(16).toString('base64url'), messages } },
      },
    ];
    // Queued with the client's txnId, so a retried send queues nothing twice; no PDU needs to go first.
    await deps.outbox.enqueue(trx, items);
    return () => deps.outbox.wake(items);
  };
}
