import type { BridgeContext } from './context.js';
import { isChannelTarget } from './ids.js';
import type { Puppets } from './puppets.js';
import type { OutboxItem } from './store/repositories.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Delivers what Matrix users said to IRC, from the outbox table, in order, per user and network. Lines
 * are stored before the homeserver's transaction is answered, so an IRC outage or a bridge restart
 * delays them instead of losing them, and a replayed transaction does not send them twice.
 */
export class Outbox {
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private closed = false;

  constructor(
    private readonly ctx: BridgeContext,
    private readonly puppets: Puppets,
    private readonly notify: (userId: string, text: string) => void,
  ) {}

  async add(items: Array<Omit<OutboxItem, 'id'>>): Promise<void> {
    await this.ctx.store.outbox.add(items);
  }

  /** Starts (or re-runs) delivery for one sender. */
  wake(userId: string, network: string): void {
    const key = `${network}|${userId}`;
    if (this.running.has(key)) {
      this.again.add(key);
      return;
    }
    const run = this.deliver(userId, network)
      .catch((err: Error) => this.ctx.logger.warn({ network, err: err.message }, 'outbox delivery stopped'))
      .finally(() => {
        this.running.delete(key);
        if (this.again.delete(key) && !this.closed) this.wake(userId, network);
      });
    this.running.set(key, run);
  }

  async resumeAll(): Promise<void> {
    await this.ctx.store.outbox.prune();
    for (const { userId, network } of await this.ctx.store.outbox.senders()) if (this.ctx.network(network)) this.wake(userId, network);
  }

  private async deliver(userId: string, network: string): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      const items = await this.ctx.store.outbox.pending(userId, network);
      if (!items.length) return;
      for (const item of items) {
        if (this.closed) return;
        try {
          await this.sendOne(item);
          await this.ctx.store.outbox.done(item.id);
          failures = 0;
        } catch (err) {
          failures++;
          const reason = (err as Error).message;
          this.ctx.logger.warn({ network, err: reason, failures }, 'IRC delivery failed; will retry');
          // Connected yet refused (banned, invite-only …): waiting will not help, and must not hold up the rest.
          if (failures >= 3 && this.puppets.get(network, userId)?.isRegistered) {
            await this.ctx.store.outbox.done(item.id);
            this.notify(userId, `A message to ${item.target} on ${network} could not be delivered: ${reason}.`);
            failures = 0;
            continue;
          }
          if (failures === 3) this.notify(userId, `Your messages to ${network} are delayed: ${reason}. They will be sent when the bridge reconnects.`);
          await sleep(Math.min(1000 * 2 ** failures, 30_000));
          break;
        }
      }
    }
  }

  private async sendOne(item: OutboxItem): Promise<void> {
    const { network, userId, target } = item;
    const conn = isChannelTarget(target) ? await this.puppets.join(network, userId, target) : await this.puppets.ensure(network, userId);
    if (item.command === 'TOPIC') await conn.raw('TOPIC', target, item.text);
    else if (item.command === 'KICK') {
      const [nick, ...reason] = item.text.split(' ');
      await conn.raw('KICK', target, nick!, reason.join(' '));
    } else await conn.send(item.command, target, item.text);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.race([Promise.all(this.running.values()), sleep(3000)]);
  }
}
