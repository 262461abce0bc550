import type { Express } from 'express';
import { METRICS_PATHS } from '../http/listeners.js';
import type { HomeserverMetrics } from './metrics.js';

// Synapse's METRICS_PREFIX (/_synapse/metrics), plus /metrics, Prometheus's default path; the listener
// gate (src/http/listeners.ts) lets only listeners with the metrics resource reach them.
export function serveMetrics(app: Express, metrics: HomeserverMetrics): void {
  for (const path of METRICS_PATHS) {
    app.get(path, async (_req, res, next) => {
      res.locals.quiet = true;
      try {
        const { contentType, body } = await metrics.exposition();
        res.status(200).setHeader('Content-Type', contentType);
        res.end(body);
      } catch (err) {
        next(err);
      }
    });
  }
}
