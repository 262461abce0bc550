import { JsonReply } from '../http/route.js';
import type { AppserviceRegistration } from './registration.js';

// Spec: Client-Server API, "POST /_matrix/client/v1/appservice/{appserviceId}/ping" — the homeserver
// calls the service's POST /_matrix/app/v1/ping and reports how long it took.

const PING_TIMEOUT_MS = 15_000;

const error = (status: number, errcode: string, message: string, extra: Record<string, unknown> = {}) =>
  new JsonReply(status, { errcode, error: message, ...extra });

export class AppservicePinger {
  timeoutMs = PING_TIMEOUT_MS;

  async ping(reg: AppserviceRegistration, transactionId: string | undefined): Promise<{ duration_ms: number } | JsonReply> {
    if (reg.url === null) return error(400, 'M_URL_NOT_SET', 'Application service URL is not set');
    const startedMono = performance.now();
    let res: Response;
    try {
      res = await fetch(`${reg.url}/_matrix/app/v1/ping`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${reg.hsToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(transactionId !== undefined ? { transaction_id: transactionId } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') return error(504, 'M_CONNECTION_TIMEOUT', 'Connection to the application service timed out');
      return error(502, 'M_CONNECTION_FAILED', 'Could not connect to the application service');
    }
    let text = '';
    try {
      text = await res.text();
    } catch {
      // body unreadable: report the status alone
    }
    if (res.status < 200 || res.status >= 300) {
      return error(502, 'M_BAD_STATUS', 'The application service returned a non-2xx status', { status: res.status, body: text.slice(0, 10_000) });
    }
    return { duration_ms: Math.max(0, Math.round(performance.now() - startedMono)) };
  }
}
