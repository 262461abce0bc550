import type { BridgeContext } from './context.js';
import { isChannelTarget } from './ids.js';
import type { Puppets } from './puppets.js';
import { IrcRefusedError } from './reconnectPolicy.js';
import { waitingLineText } from './refusalText.js';
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
  /** Waiting lines already reported in their portal as held up by a refusal. */
  private readonly toldWaiting = new Set<number>();

  constructor(
    private readonly ctx: BridgeContext,
    private readonly puppets: Puppets,
    private readonly notify: (userId: string, text: string) => void,
    private readonly tellInPortal: (network: string, channel: string, userId: string, text: string) => void,
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
      // Lines go out back to back; each is marked delivered only once the server confirmed reading it.
      const confirmations: Array<Promise<void>> = [];
      let refusedFor: string | undefined;
      for (const item of items) {
        if (this.closed) break;
        try {
          const { confirmed } = await this.queueOne(item);
          confirmations.push(confirmed.then(() => this.ctx.store.outbox.done(item.id)));
          failures = 0;
        } catch (err) {
          if (err instanceof IrcRefusedError) {
            if (err.retryInMs === undefined) refusedFor = err.reason;
            else this.tellWaiting(item, err.reason, err.retryInMs);
            // Otherwise the next attempt is the connection's own (after the server's backoff): waiting for it is enough.
            await sleep(100);
            break;
          }
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
      const results = await Promise.allSettled(confirmations);
      for (const r of results) {
        if (r.status === 'rejected' && r.reason instanceof IrcRefusedError && r.reason.retryInMs === undefined) refusedFor ??= r.reason.reason;
      }
      if (refusedFor !== undefined) return this.giveUp(await this.ctx.store.outbox.pending(userId, network), refusedFor);
      // Unconfirmed lines stay pending and are sent again (the connection closed under them).
      if (results.some((r) => r.status === 'rejected')) await sleep(1000);
    }
  }

  private tellWaiting(item: OutboxItem, reason: string, retryInMs: number): void {
    if (!isChannelTarget(item.target) || this.toldWaiting.has(item.id)) return;
    this.toldWaiting.add(item.id);
    this.tellInPortal(item.network, item.target, item.userId, waitingLineText(reason, retryInMs, preview(item.text)));
  }

  /** The connection stopped trying: what waited is reported as not delivered, where it was said. */
  private async giveUp(items: OutboxItem[], reason: string): Promise<void> {
    const told = new Set<string>();
    for (const item of items) {
      await this.ctx.store.outbox.done(item.id);
      this.toldWaiting.delete(item.id);
      if (!isChannelTarget(item.target) || told.has(item.target)) continue;
      told.add(item.target);
      this.tellInPortal(item.network, item.target, item.userId, waitingLineText(reason, undefined, preview(item.text)));
    }
    this.ctx.logger.warn({ network: items[0]?.network, lines: items.length, reason }, 'IRC refused the connection; waiting lines dropped');
  }

  /** Hands the line to the user's connection; `confirmed` settles when the server has read it. */
  private async queueOne(item: OutboxItem): Promise<{ confirmed: Promise<void> }> {
    const { network, userId, target } = item;
    const conn = isChannelTarget(target) ? await this.puppets.join(network, userId, target) : await this.puppets.ensure(network, userId);
    if (item.command === 'TOPIC') await conn.raw('TOPIC', target, item.text);
    else if (item.command === 'INVITE') await conn.raw('INVITE', item.text, target);
    else if (item.command === 'KICK') {
      const [nick, ...reason] = item.text.split(' ');
      await conn.raw('KICK', target, nick!, reason.join(' '));
    } else return { confirmed: conn.send(item.command, target, item.text) };
    return { confirmed: Promise.resolve() };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.race([Promise.all(this.running.values()), sleep(3000)]);
  }
}

const preview = (text: string) => (text.length > 60 ? `${text.slice(0, 57)}…` : text);
