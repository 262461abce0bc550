import type { Express } from 'express';

// Synapse's /health (rest/health.py): 200 "OK" as text/plain on every listener, for load balancers and probes.
export function serveHealth(app: Express): void {
  app.get('/health', (_req, res) => {
    res.status(200).setHeader('Content-Type', 'text/plain');
    res.end('OK');
  });
}
