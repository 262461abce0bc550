import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * One homeserver's Prometheus metrics, on a registry of its own (never prom-client's global one), so
 * several homeservers in one process (tests) count apart. Names are Synapse's where the meaning is the
 * same, so its Grafana dashboard (contrib/grafana/synapse.json) finds them; the rest start with `skjol_`.
 * Every series carries `server_name`, as Synapse's do.
 */
export class HomeserverMetrics {
  readonly registry = new Registry();

  private readonly requestsReceived: Counter<'method' | 'servlet'>;
  private readonly responses: Counter<'method' | 'code'>;
  private readonly responseTime: Histogram<'method' | 'servlet' | 'tag' | 'code'>;
  private readonly inFlightRequests: Gauge<'method' | 'servlet'>;
  private readonly eventsPersisted: Counter;
  private readonly syncRequests: Counter<'type'>;
  private readonly longPolls: Counter<'outcome'>;
  private readonly federationSent: Counter;
  private readonly federationFailed: Counter;
  private readonly federationSentPdus: Counter;
  private readonly federationSentEdus: Counter;
  private readonly federationReceivedPdus: Counter;
  private readonly federationReceivedEdus: Counter;
  private readonly appserviceSent: Counter<'service'>;
  private readonly appserviceFailed: Counter<'service'>;
  private readonly appserviceEvents: Counter<'service'>;
  private readonly pushesProcessed: Counter;
  private readonly pushesFailed: Counter;
  private readonly badgesProcessed: Counter;
  private readonly badgesFailed: Counter;

  constructor(serverName: string, options: { processMetrics: boolean }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ server_name: serverName });
    // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds … as prometheus_client names them.
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'synapse_server_name_info', help: 'Maps server_name to the instance it is hosted on', registers }).set(1);
    // Synapse's dashboard finds its server_name, job and index choices on this series: the whole process's user CPU here.
    new Counter({
      name: 'synapse_util_metrics_block_ru_utime_seconds_total',
      help: 'User CPU time of named blocks (block_name="process": the whole process)',
      labelNames: ['block_name'],
      registers,
      collect() {
        this.reset();
        this.inc({ block_name: 'process' }, process.cpuUsage().user / 1e6);
      },
    });

    this.requestsReceived = new Counter({ name: 'synapse_http_server_requests_received_total', help: 'HTTP requests received, by servlet', labelNames: ['method', 'servlet'], registers });
    this.responses = new Counter({ name: 'synapse_http_server_responses_total', help: 'HTTP responses sent, by status code', labelNames: ['method', 'code'], registers });
    this.responseTime = new Histogram({
      name: 'synapse_http_server_response_time_seconds',
      help: 'Time to answer HTTP requests',
      labelNames: ['method', 'servlet', 'tag', 'code'],
      // prometheus_client's default buckets, as Synapse's histogram has.
      buckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
      registers,
    });
    this.inFlightRequests = new Gauge({ name: 'synapse_http_server_in_flight_requests_count', help: 'HTTP requests being handled', labelNames: ['method', 'servlet'], registers });

    this.eventsPersisted = new Counter({ name: 'synapse_storage_events_persisted_events_total', help: 'Events persisted (local and received over federation)', registers });
    this.syncRequests = new Counter({ name: 'skjol_sync_requests_total', help: '/sync requests answered, by type (initial_sync, full_state_sync, incremental_sync)', labelNames: ['type'], registers });
    this.longPolls = new Counter({ name: 'skjol_notifier_long_polls_total', help: 'Long-polls (/sync, /events) that waited, by how the wait ended: woken (something new) or timeout', labelNames: ['outcome'], registers });

    this.federationSent = new Counter({ name: 'synapse_federation_client_sent_transactions_total', help: 'Federation transactions sent and accepted', registers });
    this.federationFailed = new Counter({ name: 'skjol_federation_client_failed_transactions_total', help: 'Federation transactions that failed (the destination then backs off)', registers });
    this.federationSentPdus = new Counter({ name: 'synapse_federation_client_sent_pdu_destinations_count_total', help: 'PDUs sent, counted once per destination', registers });
    this.federationSentEdus = new Counter({ name: 'synapse_federation_client_sent_edus_total', help: 'EDUs sent', registers });
    this.federationReceivedPdus = new Counter({ name: 'synapse_federation_server_received_pdus_total', help: 'PDUs received in federation transactions', registers });
    this.federationReceivedEdus = new Counter({ name: 'synapse_federation_server_received_edus_total', help: 'EDUs received in federation transactions', registers });

    this.appserviceSent = new Counter({ name: 'synapse_appservice_api_sent_transactions_total', help: 'Application service transactions sent', labelNames: ['service'], registers });
    this.appserviceFailed = new Counter({ name: 'synapse_appservice_api_failed_transactions_total', help: 'Application service transactions that failed', labelNames: ['service'], registers });
    this.appserviceEvents = new Counter({ name: 'synapse_appservice_api_sent_events_total', help: 'Events sent to application services', labelNames: ['service'], registers });

    this.pushesProcessed = new Counter({ name: 'synapse_http_httppusher_http_pushes_processed_total', help: 'Notifications a push gateway accepted', registers });
    this.pushesFailed = new Counter({ name: 'synapse_http_httppusher_http_pushes_failed_total', help: 'Notification pushes that failed', registers });
    this.badgesProcessed = new Counter({ name: 'synapse_http_httppusher_badge_updates_processed_total', help: 'Badge updates a push gateway accepted', registers });
    this.badgesFailed = new Counter({ name: 'synapse_http_httppusher_badge_updates_failed_total', help: 'Badge update pushes that failed', registers });
  }

  /** A gauge read at scrape time (queue depths, pool use …); `read` gives one value per label set. */
  gauge<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Promise<Array<[Partial<Record<L, string>>, number]>> | Array<[Partial<Record<L, string>>, number]>): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        const values = await read();
        this.reset();
        for (const [labels, value] of values) this.set(labels, value);
      },
    });
  }

  /** The Prometheus text exposition of every metric. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** A request reached a route; the returned function records its end. */
  requestStarted(method: string, servlet: string): () => void {
    this.requestsReceived.inc({ method, servlet });
    this.inFlightRequests.inc({ method, servlet });
    return () => this.inFlightRequests.dec({ method, servlet });
  }

  requestFinished(method: string, servlet: string, code: number, seconds: number): void {
    this.responses.inc({ method, code: String(code) });
    this.responseTime.observe({ method, servlet, tag: '', code: String(code) }, seconds);
  }

  readonly events = { persisted: (count: number) => this.eventsPersisted.inc(count) };

  readonly sync = {
    requested: (type: 'initial_sync' | 'full_state_sync' | 'incremental_sync') => this.syncRequests.inc({ type }),
    waitEnded: (outcome: 'woken' | 'timeout') => this.longPolls.inc({ outcome }),
  };

  readonly federation = {
    transactionSent: (pdus: number, edus: number) => {
      this.federationSent.inc();
      if (pdus) this.federationSentPdus.inc(pdus);
      if (edus) this.federationSentEdus.inc(edus);
    },
    transactionFailed: () => this.federationFailed.inc(),
    transactionReceived: (pdus: number, edus: number) => {
      if (pdus) this.federationReceivedPdus.inc(pdus);
      if (edus) this.federationReceivedEdus.inc(edus);
    },
  };

  readonly appservice = {
    transactionSent: (service: string, events: number) => {
      this.appserviceSent.inc({ service });
      if (events) this.appserviceEvents.inc({ service }, events);
    },
    transactionFailed: (service: string) => this.appserviceFailed.inc({ service }),
  };

  readonly push = {
    delivered: (badgeOnly: boolean) => (badgeOnly ? this.badgesProcessed : this.pushesProcessed).inc(),
    failed: (badgeOnly: boolean) => (badgeOnly ? this.badgesFailed : this.pushesFailed).inc(),
  };
}
