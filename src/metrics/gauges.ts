import { appserviceQueuedCount } from '../storage/repositories/appserviceQueue.js';
import type { Database } from '../storage/database.js';
import type { Notifier } from '../sync/notifier.js';
import type { HomeserverMetrics } from './metrics.js';

// The part of knex's connection pool (tarn) the gauge reads.
interface PoolStats {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  numPendingCreates(): number;
}

/** Gauges read at scrape time from the services that hold the state: waiting requests, queues, the pool. */
export function watchQueues(
  metrics: HomeserverMetrics,
  sources: {
    db: Database;
    notifier: Pick<Notifier, 'waitingCount'>;
    federationSender: { backingOff(): number };
    appservices: { all(): ReadonlyArray<{ id: string; url: string | null }> };
  },
): void {
  metrics.gauge('synapse_notifier_listeners', 'Requests waiting for something new (long-polling /sync, /events)', [], () => [[{}, sources.notifier.waitingCount()]]);
  metrics.gauge('skjol_federation_destinations_backing_off', 'Destination servers waiting out a backoff after a failed transaction', [], () => [
    [{}, sources.federationSender.backingOff()],
  ]);
  metrics.gauge('skjol_appservice_queue_depth', 'Items queued for each application service, not yet delivered', ['service'], async () =>
    Promise.all(
      sources.appservices
        .all()
        .filter((r) => r.url !== null)
        .map(async (r): Promise<[{ service: string }, number]> => [{ service: r.id }, await appserviceQueuedCount(sources.db.knex, r.id)]),
    ),
  );
  metrics.gauge('skjol_database_pool_connections', 'Database connections: used, free, pending_acquires (requests waiting for one), pending_creates', ['state'], () => {
    const pool = (sources.db.knex.client as { pool?: PoolStats }).pool;
    if (!pool) return [];
    return [
      [{ state: 'used' }, pool.numUsed()],
      [{ state: 'free' }, pool.numFree()],
      [{ state: 'pending_acquires' }, pool.numPendingAcquires()],
      [{ state: 'pending_creates' }, pool.numPendingCreates()],
    ];
  });
}
