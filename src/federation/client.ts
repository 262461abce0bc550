/**
 * Outbound federation HTTP: HTTPS to the address discovery gives, certificates verified by default,
 * every request signed with X-Matrix (destination included), JSON in and out, bounded in time and size.
 * A remote server's error never reaches a client verbatim: callers get a FederationRequestError that
 * carries the remote status and errcode for their decisions, and a generic message for clients; callers
 * that proxy a client's request (joins, invites, knocks) pass a 4xx on with forClient(), bounded.
 * Every failed or refused request is logged at info (never the query, headers or bodies).
 */
import { type Agent, request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { SecureVersion } from 'node:tls';
import type { Logger } from 'pino';
import type { SigningKey } from '../crypto/signing.js';
import { MatrixError, type ErrCode } from '../errors.js';
import type { OutboundPolicy } from '../net/outboundPolicy.js';
import type { ResolvedServer, WellKnownResponse } from './discovery.js';
import { SERVER_VERSION } from './version.js';
import { signRequest } from './xmatrix.js';
import { dict } from '../util/dict.js';

export type FederationFailure = 'denied' | 'unreachable' | 'timeout' | 'http' | 'bad_response';

/** Thrown by FederationClient. As a MatrixError it turns into a generic 502 (or 403 when denied) for clients. */
export class FederationRequestError extends MatrixError {
  constructor(
    readonly destination: string,
    readonly failure: FederationFailure,
    /** For logs only: may contain remote text. */
    readonly detail: string,
    readonly remoteStatus?: number,
    readonly remoteErrcode?: string,
    /** The remote's `error` text, control characters removed and capped (remoteErrorText). */
    readonly remoteError?: string,
    /** The `room_version` of a remote M_INCOMPATIBLE_ROOM_VERSION (room-version-id shaped). */
    readonly remoteRoomVersion?: string,
  ) {
    super(
      failure === 'denied' ? 'M_FORBIDDEN' : 'M_UNKNOWN',
      failure === 'denied' ? `Federation with ${destination} is not allowed` : `Failed to talk to ${destination}`,
      failure === 'denied' ? 403 : 502,
    );
    this.name = 'FederationRequestError';
  }

  /**
   * The error a client should see when this request was made on its behalf, as Synapse's
   * HttpResponseException.to_synapse_error(): a remote 4xx keeps its status and (well-formed) errcode;
   * 5xx, 401 (the remote refused our server's signature, not the user) and network failures stay 502.
   */
  forClient(): MatrixError {
    const status = this.remoteStatus;
    if (this.failure !== 'http' || status === undefined || status < 400 || status >= 500 || status === 401) return this;
    const code = this.remoteErrcode;
    const errcode = code !== undefined && REMOTE_ERRCODE.test(code) && !SESSION_ERRCODES.has(code) ? code : 'M_UNKNOWN';
    // Remote errcodes are any spec-shaped string, not only the ones this server emits.
    // Spec: M_INCOMPATIBLE_ROOM_VERSION names the room's version, which the client needs too.
    const extra = errcode === 'M_INCOMPATIBLE_ROOM_VERSION' && this.remoteRoomVersion !== undefined ? { room_version: this.remoteRoomVersion } : {};
    return new MatrixError(errcode as ErrCode, this.remoteError || `${this.destination} refused the request (HTTP ${status})`, status, extra);
  }
}

/**
 * A remote 4xx that is the room's own answer for the client (as Synapse's _try_destination_list): undefined
 * when another server might do better (network failure, 5xx, 401, or an errcode in `failover`).
 */
export function finalRemoteRefusal(err: unknown, failover: ReadonlySet<string>): MatrixError | undefined {
  if (!(err instanceof FederationRequestError)) return undefined;
  const proxied = err.forClient();
  if (proxied === err || failover.has(proxied.errcode)) return undefined;
  return proxied;
}

/**
 * Whether a remote answered that it does not know an endpoint (404, 405, or 400 M_UNRECOGNIZED), after which
 * Synapse retries a v2 membership request on its deprecated v1 form.
 */
export function isUnknownEndpoint(err: unknown): boolean {
  if (!(err instanceof FederationRequestError) || err.failure !== 'http') return false;
  return err.remoteStatus === 404 || err.remoteStatus === 405 || (err.remoteStatus === 400 && err.remoteErrcode === 'M_UNRECOGNIZED');
}

/** The body of a deprecated v1 membership answer, `[200, body]`; undefined when it is not of that shape. */
export function unwrapV1Answer(res: unknown): unknown {
  return Array.isArray(res) && res.length === 2 && res[0] === 200 ? res[1] : undefined;
}

/** make_join / make_knock answers after which Synapse tries the next server. */
export const MEMBERSHIP_FAILOVER_ERRCODES: ReadonlySet<string> = new Set(['M_NOT_FOUND', 'M_UNRECOGNIZED', 'M_UNABLE_TO_AUTHORISE_JOIN', 'M_UNABLE_TO_GRANT_JOIN']);

/** A remote errcode worth passing on: short, letters, digits, '_' and '.' (M_FORBIDDEN, ORG.EXAMPLE_X). */
const REMOTE_ERRCODE = /^[A-Z0-9_.]{1,64}$/i;
/** Codes that would make a client drop its own session: never relayed from another server. */
const SESSION_ERRCODES = new Set(['M_UNKNOWN_TOKEN', 'M_MISSING_TOKEN', 'M_USER_DEACTIVATED', 'M_USER_LOCKED', 'M_USER_SUSPENDED']);
const REMOTE_TEXT_MAX = 300;
/** Spec "Room version grammar": 1 to 32 of [a-z0-9.-]. */
const ROOM_VERSION_ID = /^[a-z0-9.-]{1,32}$/;

/** A remote `error` text fit for a client: a string, control characters removed, at most 300 characters. */
export function remoteErrorText(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const clean = value.replace(/[\p{Cc}\p{Cf}]/gu, ' ').trim();
  return clean ? [...clean].slice(0, REMOTE_TEXT_MAX).join('') : undefined;
}

/** The error code of a network failure (ECONNREFUSED, ETIMEDOUT, EOUTBOUNDBLOCKED …) for logs. */
function networkCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export interface FederationTlsOptions {
  /** federation_verify_certificates */
  verifyCertificates: boolean;
  /** PEM contents of federation_custom_ca_list; replaces the system's roots when given (as in Synapse). */
  ca: string[] | undefined;
  minVersion: SecureVersion;
}

export interface FederationClientDeps {
  serverName: string;
  signingKey: SigningKey;
  logger: Logger;
  tls: FederationTlsOptions;
  /** ip_range_blacklist / ip_range_whitelist, checked on every connection (well-known redirects included). */
  outbound: OutboundPolicy;
  resolve(serverName: string): Promise<ResolvedServer>;
  /** False for destinations outside federation_domain_whitelist. */
  isAllowed(serverName: string): boolean;
  timeoutMs?: number;
  maxResponseBytes?: number;
}

export type QueryValue = string | number | boolean | readonly string[] | undefined;

export interface FederationRequest {
  destination: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path with its parameters already encoded, e.g. `/_matrix/federation/v1/query/profile`. */
  path: string;
  query?: Record<string, QueryValue>;
  body?: unknown;
  /** Sign with X-Matrix (default). The key endpoints are fetched unsigned. */
  signed?: boolean;
  timeoutMs?: number;
  maxResponseBytes?: number;
}

/** A 2xx response whose body is read as it arrives (media), bounded in size and by an idle timeout. */
export interface StreamedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Throws FederationRequestError on timeout, a dropped connection, or more than maxResponseBytes. */
  body: AsyncIterable<Buffer>;
  /** Drops the connection when the caller stops reading early. */
  abort(): void;
}

/** Error bodies of streamed requests are only read this far (for their errcode). */
const STREAM_ERROR_BODY_BYTES = 64 * 1024;

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
const WELL_KNOWN_MAX_BYTES = 50 * 1024;
const WELL_KNOWN_TIMEOUT_MS = 10_000;
const MAX_REDIRECTS = 5;
const USER_AGENT = `Skjol/${SERVER_VERSION}`;

/** `?a=1&b=x&b=y` with every name and value percent-encoded; '' when empty. */
export function encodeQuery(query: Record<string, QueryValue> | undefined): string {
  if (!query) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    const values = Array.isArray(v) ? (v as readonly string[]) : [String(v)];
    for (const one of values) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(one)}`);
  }
  return parts.length ? '?' + parts.join('&') : '';
}

export class FederationClient {
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(private readonly deps: FederationClientDeps) {
    this.agent = deps.outbound.httpsAgent({
      keepAlive: true,
      keepAliveMsecs: 30_000,
      maxSockets: 16,
      maxTotalSockets: 512,
      maxFreeSockets: 4,
      scheduling: 'lifo',
      timeout: 90_000,
      rejectUnauthorized: deps.tls.verifyCertificates,
      ca: deps.tls.ca,
      minVersion: deps.tls.minVersion,
    });
    this.timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxResponseBytes = deps.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /** Sends a (signed) JSON request and returns the parsed JSON reply of a 2xx; throws FederationRequestError otherwise. */
  async request<T = unknown>(req: FederationRequest): Promise<T> {
    const { destination } = req;
    const { target, uri, headers, payload } = await this.prepare(req, 'application/json');
    let res: RawResponse;
    try {
      res = await this.send(target, req.method, uri, headers, payload, req.timeoutMs ?? this.timeoutMs, req.maxResponseBytes ?? this.maxResponseBytes);
    } catch (err) {
      throw this.transportError(req, err);
    }
    let json: unknown;
    try {
      json = res.body.length ? JSON.parse(res.body.toString('utf8')) : undefined;
    } catch {
      json = undefined;
    }
    if (res.status < 200 || res.status >= 300) throw this.statusError(req, res.status, json);
    if (json === undefined) {
      this.deps.logger.info({ destination, method: req.method, path: req.path, status: res.status }, 'outbound federation request failed: response is not JSON');
      throw new FederationRequestError(destination, 'bad_response', 'response is not JSON', res.status);
    }
    return json as T;
  }

  /**
   * As request, for large non-JSON bodies (media): resolves once a 2xx response's headers arrive and
   * hands over the body as a stream. The idle timeout (timeoutMs) restarts with every chunk.
   */
  async requestStream(req: FederationRequest & { accept: string }): Promise<StreamedResponse> {
    const { target, uri, headers, payload } = await this.prepare(req, req.accept);
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;
    const maxBytes = req.maxResponseBytes ?? this.maxResponseBytes;
    let opened: Awaited<ReturnType<FederationClient['open']>>;
    try {
      opened = await this.open(target, req.method, uri, headers, payload, timeoutMs);
    } catch (err) {
      throw this.transportError(req, err);
    }
    const { res, abort, touch, timedOut } = opened;
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      let json: unknown;
      try {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of res as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > STREAM_ERROR_BODY_BYTES) break;
          chunks.push(chunk);
        }
        json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        json = undefined;
      } finally {
        abort();
      }
      throw this.statusError(req, status, json);
    }
    const tooLarge = () => Object.assign(new Error('response too large'), { code: 'ETOOLARGE' });
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      abort();
      throw this.transportError(req, tooLarge());
    }
    const self = this;
    async function* body(): AsyncGenerator<Buffer> {
      let size = 0;
      try {
        for await (const chunk of res as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > maxBytes) throw tooLarge();
          touch();
          yield chunk;
        }
      } catch (err) {
        if (timedOut()) throw self.transportError(req, Object.assign(new Error(`timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
        throw self.transportError(req, err);
      } finally {
        abort();
      }
    }
    return { status, headers: res.headers, body: body(), abort };
  }

  /** Checks the destination, resolves it and builds the signed request. */
  private async prepare(req: FederationRequest, accept: string) {
    const { destination } = req;
    const where = { destination, method: req.method, path: req.path };
    if (!this.deps.isAllowed(destination)) {
      this.deps.logger.info({ ...where, reason: 'federation_domain_whitelist' }, 'outbound federation request refused: destination not in federation_domain_whitelist');
      throw new FederationRequestError(destination, 'denied', 'destination not in federation_domain_whitelist');
    }
    let target: ResolvedServer;
    try {
      target = await this.deps.resolve(destination);
    } catch (err) {
      this.deps.logger.info({ ...where, code: networkCode(err), err: (err as Error).message }, 'outbound federation request failed: server discovery failed');
      throw new FederationRequestError(destination, 'unreachable', `resolution failed: ${(err as Error).message}`);
    }
    const uri = req.path + encodeQuery(req.query);
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, accept };
    let payload: Buffer | undefined;
    if (req.body !== undefined) {
      payload = Buffer.from(JSON.stringify(req.body), 'utf8');
      headers['content-type'] = 'application/json';
    }
    if (req.signed !== false) {
      headers.authorization = signRequest(
        { method: req.method, uri, origin: this.deps.serverName, destination, content: req.body },
        this.deps.signingKey,
      );
    }
    return { target, uri, headers, payload };
  }

  /** A network failure, timeout or oversized response, logged at info. */
  private transportError(req: FederationRequest, err: unknown): FederationRequestError {
    if (err instanceof FederationRequestError) return err;
    const where = { destination: req.destination, method: req.method, path: req.path };
    const e = err as Error & { code?: string };
    const failure: FederationFailure = e.code === 'ETIMEDOUT' ? 'timeout' : e.code === 'ETOOLARGE' ? 'bad_response' : 'unreachable';
    if (e.code === 'EOUTBOUNDBLOCKED') {
      this.deps.logger.info({ ...where, code: e.code, reason: 'ip_range_blacklist', err: e.message }, 'outbound federation request refused by ip_range_blacklist');
    } else {
      this.deps.logger.info({ ...where, code: e.code, err: e.message }, 'outbound federation request failed');
    }
    return new FederationRequestError(req.destination, failure, e.message);
  }

  /** A non-2xx answer, logged at info with its (well-formed) errcode. */
  private statusError(req: FederationRequest, status: number, json: unknown): FederationRequestError {
    const where = { destination: req.destination, method: req.method, path: req.path };
    const errcode =
      typeof json === 'object' && json !== null && typeof (json as Record<string, unknown>).errcode === 'string'
        ? ((json as Record<string, unknown>).errcode as string)
        : undefined;
    const error = remoteErrorText(typeof json === 'object' && json !== null ? (json as Record<string, unknown>).error : undefined);
    const loggedErrcode = errcode !== undefined && REMOTE_ERRCODE.test(errcode) ? errcode : undefined;
    this.deps.logger.info({ ...where, status, errcode: loggedErrcode }, 'outbound federation request failed: remote answered an error');
    const roomVersion = typeof json === 'object' && json !== null ? (json as Record<string, unknown>).room_version : undefined;
    const remoteRoomVersion = typeof roomVersion === 'string' && ROOM_VERSION_ID.test(roomVersion) ? roomVersion : undefined;
    return new FederationRequestError(req.destination, 'http', `HTTP ${status} ${loggedErrcode ?? ''}`.trim(), status, errcode, error, remoteRoomVersion);
  }

  get<T = unknown>(destination: string, path: string, query?: Record<string, QueryValue>): Promise<T> {
    return this.request<T>({ destination, method: 'GET', path, query });
  }

  post<T = unknown>(destination: string, path: string, body: unknown, query?: Record<string, QueryValue>): Promise<T> {
    return this.request<T>({ destination, method: 'POST', path, body, query });
  }

  put<T = unknown>(destination: string, path: string, body: unknown, query?: Record<string, QueryValue>): Promise<T> {
    return this.request<T>({ destination, method: 'PUT', path, body, query });
  }

  /**
   * GET https://<hostname>/.well-known/matrix/server for discovery: port 443, certificate for hostname,
   * redirects followed (at most five, never to plain HTTP). Undefined when unreachable.
   */
  async fetchWellKnown(hostname: string): Promise<WellKnownResponse | undefined> {
    let url = new URL(`https://${hostname}/.well-known/matrix/server`);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      if (url.protocol !== 'https:') return undefined;
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const port = url.port ? Number(url.port) : 443;
      let res: RawResponse;
      try {
        res = await this.send(
          { serverName: hostname, connectHost: host, port, hostHeader: url.host, tlsServername: /^[\d.]+$|:/.test(host) ? undefined : host },
          'GET',
          url.pathname + url.search,
          { 'user-agent': USER_AGENT, accept: 'application/json' },
          undefined,
          WELL_KNOWN_TIMEOUT_MS,
          WELL_KNOWN_MAX_BYTES,
        );
      } catch {
        return undefined;
      }
      const location = res.headers.location;
      if (res.status >= 300 && res.status < 400 && typeof location === 'string') {
        url = new URL(location, url);
        continue;
      }
      let body: unknown;
      try {
        body = JSON.parse(res.body.toString('utf8'));
      } catch {
        body = undefined;
      }
      const headers = dict<string | undefined>();
      for (const [k, v] of Object.entries(res.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      return { status: res.status, headers, body };
    }
    return undefined;
  }

  close(): void {
    this.agent.destroy();
  }

  /** One HTTPS request whose response is handed over unread; an idle timer runs until abort(). */
  private open(
    target: ResolvedServer,
    method: string,
    uri: string,
    headers: Record<string, string>,
    payload: Buffer | undefined,
    timeoutMs: number,
  ): Promise<{ res: IncomingMessage; touch: () => void; done: () => void; abort: () => void; timedOut: () => boolean }> {
    return new Promise((resolve, reject) => {
      const allHeaders: Record<string, string | number> = { ...headers, host: target.hostHeader };
      if (payload) allHeaders['content-length'] = payload.length;
      const req = httpsRequest({
        agent: this.agent,
        method,
        host: target.connectHost,
        port: target.port,
        path: uri,
        headers: allHeaders,
        // '' keeps Node from deriving SNI from the Host header for IP literals; the IP is then checked.
        servername: target.tlsServername ?? '',
      });
      let settled = false;
      let expired = false;
      let timer: NodeJS.Timeout | undefined;
      const fail = (err: Error) => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          reject(err);
        }
        req.destroy(err);
      };
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          expired = true;
          fail(Object.assign(new Error(`timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
        }, timeoutMs);
        timer.unref();
      };
      arm();
      req.on('error', fail);
      req.on('response', (res) => {
        settled = true;
        arm();
        res.on('aborted', () => res.destroy(new Error('response aborted')));
        resolve({
          res,
          touch: arm,
          // The body was read: stop the timer and leave the connection to the agent for reuse.
          done: () => clearTimeout(timer),
          timedOut: () => expired,
          abort: () => {
            clearTimeout(timer);
            req.destroy();
          },
        });
      });
      req.end(payload);
    });
  }

  /** One request whose whole body is read, up to maxBytes; the timeout runs to the headers, then to the body's end. */
  private async send(
    target: ResolvedServer,
    method: string,
    uri: string,
    headers: Record<string, string>,
    payload: Buffer | undefined,
    timeoutMs: number,
    maxBytes: number,
  ): Promise<RawResponse> {
    const { res, abort, done, timedOut } = await this.open(target, method, uri, headers, payload, timeoutMs);
    const tooLarge = () => Object.assign(new Error('response too large'), { code: 'ETOOLARGE' });
    try {
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge();
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxBytes) throw tooLarge();
        chunks.push(chunk);
      }
      done();
      return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
    } catch (err) {
      abort();
      if (timedOut()) throw Object.assign(new Error(`timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
      throw err;
    }
  }
}
