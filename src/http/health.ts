import type { Express } from 'express';

// Synapse's /health (rest/health.py): 200 "OK" as text/plain on every listener, for load balancers and probes.
export function serveHealth(app: Express): void {
  app.get('/health', (_req, res) => {
    // Probes every few seconds would drown the request log and the request metrics.
    res.locals.quiet = true;
    res.status(200).setHeader('Content-Type', 'text/plain');
    res.end('OK');
  });
}
