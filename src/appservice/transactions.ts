/**
 * Delivers the application service queue (spec: Application Service API, "Pushing events":
 * PUT /_matrix/app/v1/transactions/{txnId} with `Authorization: Bearer <hs_token>`). Per service one
 * transaction in flight, in queue order, at most 100 events each. A transaction's items and txnId are fixed
 * and stored when it is formed, so a retry — also after a restart — resends the same transaction under the
 * same txnId and the service can deduplicate it. Failures back off exponentially (1 s doubling to 5 min).
 */
import type { Logger } from 'pino';
import type { DeviceKeysService } from '../e2ee/deviceKeysService.js';
import { listDevices } from '../storage/repositories/devices.js';
import type { Database } from '../storage/database.js';
import {
  appserviceTransactionItems,
  claimAppserviceTransaction,
  deleteAppserviceTransaction,
  getAppserviceState,
  saveAppserviceState,
  servicesWithWork,
  type AppserviceItem,
  type AppserviceItemKind,
} from '../storage/repositories/appserviceQueue.js';
import { appserviceSender, userInNamespace } from './interest.js';
import type { AppserviceRegistration } from './registration.js';
import { dict } from '../util/dict.js';

export interface AppserviceSenderOptions {
  limits: Record<AppserviceItemKind, number>;
  retryBaseMs: number;
  maxBackoffMs: number;
  requestTimeoutMs: number;
}

export const DEFAULT_APPSERVICE_SENDER_OPTIONS: AppserviceSenderOptions = {
  limits: { event: 100, ephemeral: 100, to_device: 100, device_list: 1000 },
  retryBaseMs: 1_000,
  maxBackoffMs: 5 * 60_000,
  requestTimeoutMs: 60_000,
};

/** The registrations the sender delivers to (the AppserviceRegistry satisfies this). */
export interface RegistrationSource {
  all(): readonly AppserviceRegistration[];
}

export interface AppserviceSenderDeps {
  db: Database;
  registrations: RegistrationSource;
  serverName: string;
  clock: { now(): number };
  logger: Logger;
  /** For MSC3202 one-time key counts and unused fallback key types. */
  deviceKeys?: Pick<DeviceKeysService, 'oneTimeKeyCounts' | 'unusedFallbackKeyTypes'>;
  fetch?: typeof fetch;
}

/** What the sender reports to the metrics (src/metrics). */
export interface AppserviceSenderMetrics {
  transactionSent(serviceId: string, events: number): void;
  transactionFailed(serviceId: string): void;
}

interface Queue {
  running: boolean;
  again: boolean;
  timer: NodeJS.Timeout | undefined;
}

export function appserviceBackoffMs(retryCount: number, o: Pick<AppserviceSenderOptions, 'retryBaseMs' | 'maxBackoffMs'>): number {
  return Math.min(o.retryBaseMs * 2 ** Math.max(0, Math.min(retryCount - 1, 30)), o.maxBackoffMs);
}

/** A device-list item in the queue: one user whose devices changed, or who no longer shares a room. */
export interface DeviceListItem {
  changed?: string;
  left?: string;
}

export class AppserviceTransactionSender {
  readonly options: AppserviceSenderOptions;
  metrics: AppserviceSenderMetrics | undefined;
  private readonly queues = new Map<string, Queue>();
  private readonly running = new Set<Promise<void>>();
  private readonly aborts = new Set<AbortController>();
  private closed = false;

  constructor(
    private readonly deps: AppserviceSenderDeps,
    options: Partial<AppserviceSenderOptions> = {},
  ) {
    this.options = { ...DEFAULT_APPSERVICE_SENDER_OPTIONS, ...options };
  }

  /** Resumes every service with queued work, at its stored next attempt time. */
  async start(): Promise<void> {
    for (const id of await servicesWithWork(this.deps.db.knex)) this.wake(id);
  }

  wake(serviceId: string): void {
    if (this.closed) return;
    const q = this.queue(serviceId);
    if (q.running) {
      q.again = true;
      return;
    }
    if (q.timer) return;
    this.launch(serviceId, false);
  }

  /** Stops timers and cuts requests in flight short; what was not acknowledged stays queued. */
  async stop(): Promise<void> {
    this.closed = true;
    for (const q of this.queues.values()) {
      if (q.timer) clearTimeout(q.timer);
      q.timer = undefined;
    }
    for (const a of this.aborts) a.abort();
    await Promise.allSettled([...this.running]);
  }

  /** Resolves when nothing is in flight (tests). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running]);
  }

  private queue(serviceId: string): Queue {
    let q = this.queues.get(serviceId);
    if (!q) {
      q = { running: false, again: false, timer: undefined };
      this.queues.set(serviceId, q);
    }
    return q;
  }

  private launch(serviceId: string, ignoreBackoff: boolean): void {
    const q = this.queue(serviceId);
    q.running = true;
    const p = this.drain(serviceId, ignoreBackoff)
      .catch((err) => this.deps.logger.error({ err, serviceId }, 'appservice sender failed'))
      .finally(() => {
        q.running = false;
        this.running.delete(p);
        if (q.again && !q.timer && !this.closed) {
          q.again = false;
          this.launch(serviceId, false);
        }
      });
    this.running.add(p);
  }

  private schedule(serviceId: string, delayMs: number): void {
    if (this.closed) return;
    const q = this.queue(serviceId);
    if (q.timer) clearTimeout(q.timer);
    q.timer = setTimeout(() => {
      q.timer = undefined;
      if (q.running) q.again = true;
      else this.launch(serviceId, true);
    }, Math.max(0, delayMs));
    q.timer.unref();
  }

  private async drain(serviceId: string, ignoreBackoff: boolean): Promise<void> {
    const { db, clock } = this.deps;
    const q = this.queue(serviceId);
    for (;;) {
      if (this.closed) return;
      q.again = false;
      const reg = this.deps.registrations.all().find((r) => r.id === serviceId);
      if (!reg || reg.url === null) return; // no longer registered, or receives no pushes: keep the queue
      let state = await getAppserviceState(db.knex, serviceId);
      const now = clock.now();
      if (!ignoreBackoff && state.nextAttemptTs > now) {
        this.schedule(serviceId, state.nextAttemptTs - now);
        return;
      }
      let txnId = state.pendingTxnId;
      let items: AppserviceItem[] = txnId ? await appserviceTransactionItems(db.knex, serviceId, txnId) : [];
      if (!items.length) {
        const claimed = await db.knex.transaction(async (trx) => {
          const formed = await claimAppserviceTransaction(trx, serviceId, this.options.limits);
          state = { ...state, pendingTxnId: formed?.txnId ?? null };
          await saveAppserviceState(trx, state);
          return formed;
        });
        if (!claimed) return;
        ({ txnId, items } = claimed);
      }
      const body = await this.transactionBody(reg, items);
      try {
        await this.put(reg, txnId!, body);
        this.metrics?.transactionSent(serviceId, items.filter((i) => i.kind === 'event').length);
      } catch (err) {
        if (this.closed) return;
        const retryCount = state.retryCount + 1;
        const delay = appserviceBackoffMs(retryCount, this.options);
        this.metrics?.transactionFailed(serviceId);
        await saveAppserviceState(db.knex, { ...state, pendingTxnId: txnId, retryCount, nextAttemptTs: clock.now() + delay });
        this.deps.logger.info({ serviceId, txnId, retryCount, delayMs: delay, err: String(err) }, 'appservice: transaction failed, backing off');
        this.schedule(serviceId, delay);
        return;
      }
      await db.knex.transaction(async (trx) => {
        await deleteAppserviceTransaction(trx, serviceId, txnId!);
        await saveAppserviceState(trx, { serviceId, retryCount: 0, nextAttemptTs: 0, pendingTxnId: null, lastSuccessTs: clock.now() });
      });
      ignoreBackoff = false;
    }
  }

  private async put(reg: AppserviceRegistration, txnId: string, body: Record<string, unknown>): Promise<void> {
    const abort = new AbortController();
    this.aborts.add(abort);
    const timer = setTimeout(() => abort.abort(), this.options.requestTimeoutMs);
    timer.unref();
    try {
      const res = await (this.deps.fetch ?? fetch)(`${reg.url}/_matrix/app/v1/transactions/${encodeURIComponent(txnId)}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${reg.hsToken}` },
        body: JSON.stringify(body),
        signal: abort.signal,
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status < 200 || res.status >= 300) throw new Error(`HTTP ${res.status}`);
    } finally {
      clearTimeout(timer);
      this.aborts.delete(abort);
    }
  }

  /** The transaction body (spec + MSC2409 ephemeral/to-device + MSC3202 device data). */
  async transactionBody(reg: AppserviceRegistration, items: readonly AppserviceItem[]): Promise<Record<string, unknown>> {
    const of = (kind: AppserviceItemKind) => items.filter((i) => i.kind === kind).map((i) => i.payload);
    const body: Record<string, unknown> = { events: of('event') };
    const ephemeral = of('ephemeral');
    if (ephemeral.length) {
      body.ephemeral = ephemeral;
      body['de.sorunome.msc2409.ephemeral'] = ephemeral;
    }
    const toDevice = of('to_device') as Array<{ to_user_id: string }>;
    if (toDevice.length) body['de.sorunome.msc2409.to_device'] = toDevice;
    if (!reg.msc3202) return body;
    const changed = new Set<string>();
    const left = new Set<string>();
    for (const p of of('device_list') as DeviceListItem[]) {
      if (p.changed) {
        changed.add(p.changed);
        left.delete(p.changed);
      }
      if (p.left) {
        left.add(p.left);
        changed.delete(p.left);
      }
    }
    if (changed.size || left.size) body['org.matrix.msc3202.device_lists'] = { changed: [...changed], left: [...left] };
    await this.addKeyCounts(reg, body, items, toDevice);
    return body;
  }

  /**
   * One-time key counts and unused fallback key types for the namespaced local users this transaction
   * mentions (event senders, to-device recipients) and the service's own sender (as Synapse does).
   */
  private async addKeyCounts(reg: AppserviceRegistration, body: Record<string, unknown>, items: readonly AppserviceItem[], toDevice: ReadonlyArray<{ to_user_id: string }>): Promise<void> {
    const keys = this.deps.deviceKeys;
    if (!keys) return;
    const { serverName } = this.deps;
    const users = new Set<string>([appserviceSender(reg, serverName)]);
    for (const i of items) {
      const sender = (i.payload as { sender?: unknown }).sender;
      if (i.kind === 'event' && typeof sender === 'string') users.add(sender);
    }
    for (const m of toDevice) users.add(m.to_user_id);
    const counts = dict<Record<string, Record<string, number>>>();
    const fallback = dict<Record<string, string[]>>();
    for (const userId of users) {
      if (!userId.endsWith(`:${serverName}`) || !userInNamespace(reg, userId, serverName)) continue;
      for (const d of await listDevices(this.deps.db.knex, userId, true)) {
        (counts[userId] ??= dict())[d.deviceId] = await keys.oneTimeKeyCounts(userId, d.deviceId);
        (fallback[userId] ??= dict())[d.deviceId] = await keys.unusedFallbackKeyTypes(userId, d.deviceId);
      }
    }
    if (Object.keys(counts).length) {
      body['org.matrix.msc3202.device_one_time_keys_count'] = counts;
      body['org.matrix.msc3202.device_one_time_key_counts'] = counts;
      body['org.matrix.msc3202.device_unused_fallback_key_types'] = fallback;
    }
  }
}
