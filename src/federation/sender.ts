/**
 * Delivers the federation outbox (spec: Server-Server API, "Transactions"): per destination one transaction
 * in flight, in queue order, at most 50 PDUs and 100 EDUs each. A transaction's items and txnId are fixed
 * when it is formed and stored, so a retry — also after a restart — resends the same transaction under the
 * same txnId and the receiver can deduplicate it. Failures back off exponentially; any request from the
 * destination (it is evidently up again) ends its backoff early.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Database } from '../storage/database.js';
import {
  claimTransaction,
  deleteTransaction,
  destinationsWithWork,
  getDestination,
  saveDestination,
  transactionItems,
  type OutboxItem,
} from '../storage/repositories/outbox.js';
import type { FederationClient } from './client.js';

export interface SenderOptions {
  maxPdusPerTransaction: number;
  maxEdusPerTransaction: number;
  /** First retry delay; doubles per consecutive failure. */
  retryBaseMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_SENDER_OPTIONS: SenderOptions = {
  maxPdusPerTransaction: 50,
  maxEdusPerTransaction: 100,
  retryBaseMs: 1_000,
  maxBackoffMs: 60 * 60_000,
};

export interface SenderDeps {
  db: Database;
  client: Pick<FederationClient, 'request'>;
  serverName: string;
  clock: { now(): number };
  logger: Logger;
}

interface Queue {
  running: boolean;
  /** New work arrived while running: look again before stopping. */
  again: boolean;
  timer: NodeJS.Timeout | undefined;
}

export interface SendResponse {
  pdus?: Record<string, { error?: string }>;
}

export function backoffMs(retryCount: number, options: Pick<SenderOptions, 'retryBaseMs' | 'maxBackoffMs'>): number {
  return Math.min(options.retryBaseMs * 2 ** Math.max(0, Math.min(retryCount - 1, 30)), options.maxBackoffMs);
}

/** What the sender reports to the metrics (src/metrics). */
export interface SenderMetrics {
  transactionSent(pdus: number, edus: number): void;
  transactionFailed(): void;
}

export class TransactionSender {
  readonly options: SenderOptions;
  metrics: SenderMetrics | undefined;
  private readonly queues = new Map<string, Queue>();
  private readonly running = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly deps: SenderDeps,
    options: Partial<SenderOptions> = {},
  ) {
    this.options = { ...DEFAULT_SENDER_OPTIONS, ...options };
  }

  /** Resumes every destination with queued work (at its stored next attempt time). */
  async start(): Promise<void> {
    for (const state of await destinationsWithWork(this.deps.db.knex)) this.wake(state.destination);
  }

  /** New work for `destination`: sends now unless it is backing off or already sending. */
  wake(destination: string): void {
    if (this.closed) return;
    const q = this.queue(destination);
    if (q.running) {
      q.again = true;
      return;
    }
    if (q.timer) return; // backing off: the timer sends
    this.launch(destination, false);
  }

  /** `destination` just talked to us: if it was backing off, try again now. */
  markAlive(destination: string): void {
    if (this.closed) return;
    const q = this.queues.get(destination);
    if (!q?.timer) return;
    clearTimeout(q.timer);
    q.timer = undefined;
    this.launch(destination, true);
  }

  /** Stops timers; resolves when the transactions in flight have ended (close the client to cut them short). */
  async stop(): Promise<void> {
    this.closed = true;
    for (const q of this.queues.values()) {
      if (q.timer) clearTimeout(q.timer);
      q.timer = undefined;
    }
    await Promise.allSettled([...this.running]);
  }

  /** Resolves when nothing is in flight (tests). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running]);
  }

  /** Destinations waiting out a backoff after a failed transaction. */
  backingOff(): number {
    let n = 0;
    for (const q of this.queues.values()) if (q.timer) n++;
    return n;
  }

  private queue(destination: string): Queue {
    let q = this.queues.get(destination);
    if (!q) {
      q = { running: false, again: false, timer: undefined };
      this.queues.set(destination, q);
    }
    return q;
  }

  private launch(destination: string, ignoreBackoff: boolean): void {
    const q = this.queue(destination);
    q.running = true;
    const p = this.drain(destination, ignoreBackoff)
      .catch((err) => this.deps.logger.error({ err, destination }, 'federation sender failed'))
      .finally(() => {
        q.running = false;
        this.running.delete(p);
        if (q.again && !q.timer && !this.closed) {
          q.again = false;
          this.launch(destination, false);
        }
      });
    this.running.add(p);
  }

  private schedule(destination: string, delayMs: number): void {
    if (this.closed) return;
    const q = this.queue(destination);
    if (q.timer) clearTimeout(q.timer);
    q.timer = setTimeout(() => {
      q.timer = undefined;
      if (q.running) q.again = true;
      else this.launch(destination, true);
    }, Math.max(0, delayMs));
    q.timer.unref();
  }

  private async drain(destination: string, ignoreBackoff: boolean): Promise<void> {
    const { db, clock } = this.deps;
    const q = this.queue(destination);
    for (;;) {
      if (this.closed) return;
      q.again = false;
      let state = await getDestination(db.knex, destination);
      const now = clock.now();
      if (!ignoreBackoff && state.nextAttemptTs > now) {
        this.schedule(destination, state.nextAttemptTs - now);
        return;
      }
      let txnId = state.pendingTxnId;
      let items: OutboxItem[] = txnId ? await transactionItems(db.knex, destination, txnId) : [];
      if (!items.length) {
        const fresh = `${now}_${randomBytes(6).toString('hex')}`;
        items = await db.knex.transaction(async (trx) => {
          const claimed = await claimTransaction(trx, destination, fresh, this.options.maxPdusPerTransaction, this.options.maxEdusPerTransaction);
          state = { ...state, pendingTxnId: claimed.length ? fresh : null };
          await saveDestination(trx, state);
          return claimed;
        });
        if (!items.length) return;
        txnId = fresh;
      }
      const body = {
        origin: this.deps.serverName,
        origin_server_ts: now,
        pdus: items.filter((i) => i.kind === 'pdu').map((i) => i.payload),
        edus: items.filter((i) => i.kind === 'edu').map((i) => i.payload),
      };
      try {
        const res = await this.deps.client.request<SendResponse>({
          destination,
          method: 'PUT',
          path: `/_matrix/federation/v1/send/${encodeURIComponent(txnId!)}`,
          body,
        });
        const errors = Object.entries(res?.pdus ?? {}).filter(([, r]) => r && typeof r === 'object' && r.error !== undefined);
        if (errors.length) this.deps.logger.info({ destination, txnId, errors: errors.slice(0, 10) }, 'federation: remote refused PDUs');
        this.metrics?.transactionSent(body.pdus.length, body.edus.length);
      } catch (err) {
        if (this.closed) return;
        const retryCount = state.retryCount + 1;
        const delay = backoffMs(retryCount, this.options);
        this.metrics?.transactionFailed();
        await saveDestination(db.knex, { ...state, pendingTxnId: txnId, retryCount, nextAttemptTs: clock.now() + delay });
        this.deps.logger.info({ destination, txnId, retryCount, delayMs: delay, err: (err as { detail?: string }).detail ?? String(err) }, 'federation: transaction failed, backing off');
        this.schedule(destination, delay);
        return;
      }
      await db.knex.transaction(async (trx) => {
        await deleteTransaction(trx, destination, txnId!);
        await saveDestination(trx, { destination, retryCount: 0, nextAttemptTs: 0, pendingTxnId: null, lastSuccessTs: clock.now() });
      });
      ignoreBackoff = false;
    }
  }
}
