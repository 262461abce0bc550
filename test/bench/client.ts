/**
 * Raw HTTP for the benchmark: node:http over one keep-alive agent, loopback only.
 * No SDK, so what we time is the server plus a thin, constant client cost.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface Response<T = any> {
  status: number;
  body: T;
  /** Size of the response body on the wire (after any transfer decoding). */
  bytes: number;
  /** Wall time of the request, ms. */
  ms: number;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  /** Abort the request after this many ms (default 60 s); rejects with an Error. */
  timeoutMs?: number;
}

export class BenchClient {
  readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;

  constructor(readonly baseUrl: string) {
    const url = new URL(baseUrl);
    if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost' && url.hostname !== '[::1]') {
      throw new Error(`bench client only talks to loopback, not ${url.hostname}`);
    }
    this.host = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port || 80);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
  }

  request<T = any>(method: string, path: string, options: RequestOptions = {}): Promise<Response<T>> {
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const headers: Record<string, string | number> = { accept: 'application/json' };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const started = performance.now();
    return new Promise<Response<T>>((resolve, reject) => {
      const req = http.request(
        { host: this.host, port: this.port, method, path, headers, agent: this.agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const raw = Buffer.concat(chunks);
            let body: unknown = undefined;
            if (raw.length) {
              try {
                body = JSON.parse(raw.toString('utf8'));
              } catch {
                body = raw.toString('utf8');
              }
            }
            resolve({ status: res.statusCode ?? 0, body: body as T, bytes: raw.length, ms: performance.now() - started });
          });
        },
      );
      req.setTimeout(options.timeoutMs ?? 60_000, () => req.destroy(new Error(`${method} ${path.split('?')[0]} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface BenchUser {
  userId: string;
  accessToken: string;
  deviceId: string;
}

export class HttpError extends Error {
  constructor(
    readonly what: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`${what} failed: HTTP ${status} ${JSON.stringify(body)?.slice(0, 300)}`);
  }
}

const C = '/_matrix/client/v3';
const enc = encodeURIComponent;

function ok<T>(what: string, res: Response<T>): T {
  if (res.status !== 200) throw new HttpError(what, res.status, res.body);
  return res.body;
}

/** Registers through user-interactive auth: the first call returns 401 with a session, the second uses m.login.dummy. */
export async function register(client: BenchClient, username: string, password = `bench-${username}-pw`): Promise<BenchUser> {
  const first = await client.request(
    'POST',
    `${C}/register`,
    { body: { username, password, initial_device_display_name: 'bench', inhibit_login: false } },
  );
  let res = first;
  if (first.status === 401) {
    const session = (first.body as { session?: string } | undefined)?.session;
    res = await client.request('POST', `${C}/register`, {
      body: { username, password, auth: { type: 'm.login.dummy', session } },
    });
  }
  const body = ok(`register ${username}`, res) as { user_id: string; access_token: string; device_id: string };
  return { userId: body.user_id, accessToken: body.access_token, deviceId: body.device_id };
}

export async function createRoom(client: BenchClient, user: BenchUser, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await client.request('POST', `${C}/createRoom`, { token: user.accessToken, body: { preset: 'public_chat', ...extra } });
  return (ok('createRoom', res) as { room_id: string }).room_id;
}

export async function joinRoom(client: BenchClient, user: BenchUser, roomId: string): Promise<void> {
  ok(`join ${roomId}`, await client.request('POST', `${C}/join/${enc(roomId)}`, { token: user.accessToken, body: {} }));
}

export function sendMessage(client: BenchClient, user: BenchUser, roomId: string, txnId: string, body: string): Promise<Response<{ event_id?: string }>> {
  return client.request('PUT', `${C}/rooms/${enc(roomId)}/send/m.room.message/${enc(txnId)}`, {
    token: user.accessToken,
    body: { msgtype: 'm.text', body },
  });
}

export async function sendMessageOk(client: BenchClient, user: BenchUser, roomId: string, txnId: string, body: string): Promise<string> {
  const res = await sendMessage(client, user, roomId, txnId, body);
  return (ok('send', res) as { event_id: string }).event_id;
}

export interface SyncParams {
  since?: string;
  timeout?: number;
  filter?: string;
  fullState?: boolean;
}

export function sync(client: BenchClient, user: BenchUser, params: SyncParams = {}, timeoutMs?: number): Promise<Response<SyncBody>> {
  const q = new URLSearchParams();
  if (params.since !== undefined) q.set('since', params.since);
  if (params.timeout !== undefined) q.set('timeout', String(params.timeout));
  if (params.filter !== undefined) q.set('filter', params.filter);
  if (params.fullState) q.set('full_state', 'true');
  const qs = q.toString();
  return client.request<SyncBody>('GET', `${C}/sync${qs ? `?${qs}` : ''}`, {
    token: user.accessToken,
    timeoutMs: timeoutMs ?? (params.timeout ?? 0) + 30_000,
  });
}

export interface SyncBody {
  next_batch: string;
  rooms?: {
    join?: Record<string, { timeline?: { events?: Array<{ type: string; content?: { body?: unknown } }>; limited?: boolean } }>;
  };
}

export type SlidingSyncBody = Record<string, unknown>;

export interface SlidingSyncAnswer {
  pos: string;
  lists?: Record<string, { count: number }>;
  rooms?: Record<string, { timeline?: Array<{ type: string; content?: { body?: unknown } }> }>;
}

/** MSC4186 simplified sliding sync; `pos` and `timeout` are query parameters. */
export function slidingSync(
  client: BenchClient,
  user: BenchUser,
  body: SlidingSyncBody,
  params: { pos?: string; timeout?: number } = {},
): Promise<Response<SlidingSyncAnswer>> {
  const q = new URLSearchParams();
  if (params.pos !== undefined) q.set('pos', params.pos);
  if (params.timeout !== undefined) q.set('timeout', String(params.timeout));
  const qs = q.toString();
  return client.request<SlidingSyncAnswer>('POST', `/_matrix/client/unstable/org.matrix.simplified_msc3575/sync${qs ? `?${qs}` : ''}`, {
    token: user.accessToken,
    body,
    timeoutMs: (params.timeout ?? 0) + 30_000,
  });
}

/**
 * Uploads a sync filter and returns its id; falls back to inline JSON (also valid per spec)
 * if the filter endpoint is not there.
 */
export async function syncFilter(client: BenchClient, user: BenchUser, filter: Record<string, unknown>): Promise<string> {
  const res = await client.request('POST', `${C}/user/${enc(user.userId)}/filter`, { token: user.accessToken, body: filter });
  const id = (res.body as { filter_id?: unknown } | undefined)?.filter_id;
  if (res.status === 200 && typeof id === 'string') return id;
  return JSON.stringify(filter);
}

/** Runs `fn` over `items` with at most `concurrency` in flight; rejects on the first failure. */
export async function pool<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined) {
      const i = next++;
      if (i >= items.length) return;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (err) {
        failed ??= err;
        throw err;
      }
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker);
  const settled = await Promise.allSettled(workers);
  if (failed !== undefined) throw failed;
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  return results;
}

/** Registers `count` users named `<prefix><i>` a few at a time (password hashing is deliberately slow). */
export function registerMany(client: BenchClient, prefix: string, count: number, concurrency = 4): Promise<BenchUser[]> {
  return pool(
    Array.from({ length: count }, (_, i) => `${prefix}${i}`),
    concurrency,
    (name) => register(client, name),
  );
}
