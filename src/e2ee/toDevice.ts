import type { Knex } from 'knex';
import type { ServiceDeps } from '../serviceDeps.js';
import { listDevices } from '../storage/repositories/devices.js';
import * as repo from '../storage/repositories/e2ee.js';
import { dict } from '../util/dict.js';

export const TO_DEVICE_STREAM = 'to_device';

/** How many to-device messages one /sync delivers; the rest follow in the next. */
export const TO_DEVICE_SYNC_LIMIT = 100;

/**
 * Spec: Client-Server API, "Send-to-Device messaging". Messages are stored durably, delivered in order per
 * device, and deleted only when the device's next sync shows it has them.
 */
export class ToDeviceService {
  /** Deliveries to users on other servers, set by federation: queued in the send's transaction; returns what to do once it committed. */
  remoteSender:
    | ((trx: Knex.Transaction, sender: string, type: string, messages: Record<string, Record<string, unknown>>, server: string) => Promise<() => void>)
    | undefined;

  constructor(private readonly deps: ServiceDeps) {}

  /**
   * Takes messages for devices another component delivers (application services with MSC2409) before the
   * normal queue, inside the send's transaction: each returns the messages it did not take, and what to do
   * once the transaction committed.
   */
  readonly diverters: Array<
    (
      trx: Knex.Transaction,
      sender: string,
      type: string,
      messages: Record<string, Record<string, unknown>>,
    ) => Promise<{ rest: Record<string, Record<string, unknown>>; afterCommit?: () => void }>
  > = [];

  /**
   * Queues the messages in one stream-write transaction: local devices, diverted ones and other servers'
   * outbox alike. `once` wraps that write (a client's txnId, a federation message_id), so the messages
   * and the record that they were sent commit together, and a retry after a crash sends nothing twice.
   */
  async send(
    sender: string,
    type: string,
    messages: Record<string, Record<string, unknown>>,
    once: (trx: Knex.Transaction, work: () => Promise<void>) => Promise<unknown> = (_trx, work) => work(),
  ): Promise<void> {
    const afterCommit: Array<() => void> = [];
    await this.deps.db.write((trx) =>
      once(trx, async () => {
        let rest = messages;
        for (const divert of this.diverters) {
          const diverted = await divert(trx, sender, type, rest);
          rest = diverted.rest;
          if (diverted.afterCommit) afterCommit.push(diverted.afterCommit);
        }
        const { local, remote } = this.split(rest);
        const recipients = await this.queueLocal(trx, sender, type, local);
        if (recipients.size) afterCommit.push(() => this.deps.notifier.notifyUsers(recipients));
        for (const [server, byUser] of remote) {
          if (this.remoteSender) afterCommit.push(await this.remoteSender(trx, sender, type, byUser, server));
          else this.deps.logger.debug({ server }, 'to-device for a remote server dropped: no federation');
        }
      }),
    );
    for (const fn of afterCommit) fn();
  }

  private split(messages: Record<string, Record<string, unknown>>): {
    local: Array<[string, Record<string, unknown>]>;
    remote: Map<string, Record<string, Record<string, unknown>>>;
  } {
    const local: Array<[string, Record<string, unknown>]> = [];
    const remote = new Map<string, Record<string, Record<string, unknown>>>();
    for (const [userId, byDevice] of Object.entries(messages)) {
      const server = userId.slice(userId.indexOf(':') + 1);
      if (server === this.deps.serverName) {
        local.push([userId, byDevice]);
        continue;
      }
      const forServer = remote.get(server) ?? dict<Record<string, unknown>>();
      forServer[userId] = byDevice;
      remote.set(server, forServer);
    }
    return { local, remote };
  }

  /** Queues messages for local devices; returns the users to wake once committed. */
  private async queueLocal(trx: Knex.Transaction, sender: string, type: string, local: Array<[string, Record<string, unknown>]>): Promise<Set<string>> {
    const rows: Array<{ userId: string; deviceId: string; sender: string; type: string; content: string }> = [];
    for (const [userId, byDevice] of local) {
      // Read in the write transaction, so a device deleted meanwhile (and its queue with it) gets nothing.
      const devices = (await listDevices(trx, userId, true)).map((d) => d.deviceId);
      const known = new Set(devices);
      for (const [deviceId, content] of Object.entries(byDevice)) {
        // A message for a device that does not exist (deleted, or never was) could never be delivered nor
        // acknowledged, so it is dropped instead of staying in the queue for ever (Synapse does the same).
        const targets = deviceId === '*' ? devices : known.has(deviceId) ? [deviceId] : [];
        const json = JSON.stringify(content);
        for (const target of targets) rows.push({ userId, deviceId: target, sender, type, content: json });
      }
    }
    if (rows.length) {
      const head = await repo.insertToDevice(trx, rows);
      await repo.advanceStreamHead(trx, TO_DEVICE_STREAM, head);
    }
    return new Set(rows.map((r) => r.userId));
  }

  latest(): Promise<number> {
    return repo.readStreamHead(this.deps.db.knex, TO_DEVICE_STREAM);
  }

  /**
   * Messages for one device after `since` (acknowledging everything up to it), at most the sync limit.
   * Returns the position the next sync token must carry.
   */
  async forSync(userId: string, deviceId: string, since: number, to: number): Promise<{ events: Array<{ sender: string; type: string; content: Record<string, unknown> }>; position: number }> {
    const db = this.deps.db.knex;
    if (since > 0) await repo.deleteToDeviceUpTo(db, userId, deviceId, since);
    const rows = await repo.toDeviceAfter(db, userId, deviceId, since, to, TO_DEVICE_SYNC_LIMIT);
    const position = rows.length === TO_DEVICE_SYNC_LIMIT ? rows[rows.length - 1]!.streamId : to;
    return { events: rows.map((r) => ({ sender: r.sender, type: r.type, content: r.content })), position };
  }
}
