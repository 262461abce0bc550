/**
 * The bridge's only way to reach the homeserver: the Client-Server API called with the application
 * service's as_token, acting as one of its users (`user_id`) and, with MSC3202, one of their devices.
 */
export interface AsRequestOptions {
  /** The namespaced user to act as (Application Service API: identity assertion). */
  userId?: string;
  /** MSC3202 device masquerading: the device of `userId` to act as. */
  deviceId?: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
}

/** A Matrix error answer (`{errcode, error}`) or a transport failure, with the HTTP status. */
export class MatrixApiError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'MatrixApiError';
  }
}

export interface HomeserverApiOptions {
  /** Base URL of the homeserver, e.g. http://localhost:8008 */
  url: string;
  asToken: string;
  /** How long one request may take before it is abandoned. */
  timeoutMs?: number;
}

export class HomeserverApi {
  private readonly base: string;

  constructor(private readonly options: HomeserverApiOptions) {
    this.base = options.url.replace(/\/+$/, '');
  }

  /** Calls `path` (starting with /_matrix/…) and returns the parsed JSON answer; throws MatrixApiError otherwise. */
  async request<T = Record<string, unknown>>(method: string, path: string, opts: AsRequestOptions = {}): Promise<T> {
    const url = new URL(this.base + path);
    if (opts.userId) url.searchParams.set('user_id', opts.userId);
    if (opts.deviceId) url.searchParams.set('org.matrix.msc3202.device_id', opts.deviceId);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.options.asToken}`, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 60_000),
      });
    } catch (err) {
      throw new MatrixApiError(0, 'M_CONNECTION_FAILED', `${method} ${path}: ${(err as Error).message}`);
    }
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      if (res.ok) throw new MatrixApiError(res.status, 'M_NOT_JSON', `${method} ${path}: answer is not JSON`);
    }
    if (!res.ok) {
      const retry = typeof json.retry_after_ms === 'number' ? json.retry_after_ms : undefined;
      throw new MatrixApiError(res.status, String(json.errcode ?? 'M_UNKNOWN'), `${method} ${path}: ${res.status} ${String(json.error ?? text.slice(0, 200))}`, retry);
    }
    return json as T;
  }

  /** GET `path` with the as_token, the answer unread (media downloads, streamed on by the caller). */
  async fetchRaw(path: string, signal?: AbortSignal): Promise<Response> {
    return fetch(this.base + path, { headers: { authorization: `Bearer ${this.options.asToken}` }, signal });
  }
}

/** Encodes one path segment (room ids, aliases, user ids, event types, transaction ids). */
export const seg = (s: string): string => encodeURIComponent(s);

/** The localpart of a user id (`@alice:example.org` → `alice`). */
export const localpartOf = (userId: string): string => userId.slice(1, userId.indexOf(':'));

/** Creates one of the service's users, without a login; M_USER_IN_USE means it exists, which is fine. */
export async function registerAppserviceUser(api: HomeserverApi, userId: string): Promise<void> {
  if (!/^@[^:]+:.+$/.test(userId)) throw new Error(`not a user ID: ${userId}`);
  try {
    await api.request('POST', '/_matrix/client/v3/register', { body: { type: 'm.login.application_service', username: localpartOf(userId), inhibit_login: true } });
  } catch (err) {
    if (!(err instanceof MatrixApiError && err.errcode === 'M_USER_IN_USE')) throw err;
  }
}
