import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Express, NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import { MatrixError, badJson, limitExceeded, unrecognized } from '../errors.js';
import { MAX_BODY_NESTING, jsonNestingExceeds } from '../util/jsonNesting.js';
import { servletName } from '../metrics/servletNames.js';
import { closeWhenAnswered, readBody, streamBody } from './body.js';
import type { InFlightRequests } from './inFlight.js';
import { redactedUri } from './redact.js';
import type { RateLimiter } from './rateLimit.js';
import {
  JsonReply,
  RawReply,
  type BodyStore,
  type RateLimitName,
  type RequestContext,
  type Requester,
  type RouteDefinition,
  type ServerRequester,
  type StreamedBody,
} from './route.js';

export interface HttpDeps {
  logger: Logger;
  /** Resolves an access token to its requester or throws M_UNKNOWN_TOKEN. */
  authenticate(token: string, ctx: { ip: string; userAgent: string | undefined; query: Record<string, unknown>; path: string }): Promise<Requester>;
  rateLimiters: Partial<Record<RateLimitName, RateLimiter>>;
  /** Users exempt from rate limits (e.g. appservices with rate_limited: false). */
  isRateLimitExempt?(requester: Requester): boolean;
  maxBodyBytes: number;
  /**
   * Verifies a server-to-server request ('server' routes) or throws a MatrixError (401/403). `uri` is the
   * request target as received (path and query); `rawBody` the body bytes.
   */
  authenticateServer?(req: {
    method: string;
    uri: string;
    headers: Record<string, string | string[] | undefined>;
    rawBody: Buffer;
  }): Promise<ServerRequester>;
  /** Tracks running handlers for a graceful shutdown. */
  inFlight?: InFlightRequests;
  /** The client's address, per the listener's x_forwarded setting (default: the socket's). */
  clientAddress?(req: Request): string;
  /** Where `rawBody: 'stream'` routes spool their bodies. */
  bodyStore?: BodyStore;
  /** Requests by servlet (src/metrics). */
  metrics?: HttpMetrics;
}

/** What the edge reports to the metrics (src/metrics). */
export interface HttpMetrics {
  /** A request reached a route; the returned function marks the handler done. */
  requestStarted(method: string, servlet: string): () => void;
  requestFinished(method: string, servlet: string, code: number, seconds: number): void;
}

function extractToken(req: Request): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    return match?.[1];
  }
  const q = req.query.access_token;
  return typeof q === 'string' ? q : undefined;
}

function zodToMatrix(error: z.ZodError, where: 'body' | 'query'): MatrixError {
  const issue = error.issues[0]!;
  const field = issue.path.join('.') || where;
  if (where === 'query') return new MatrixError('M_INVALID_PARAM', `Invalid parameter '${field}': ${issue.message}`);
  if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) {
    return new MatrixError('M_MISSING_PARAM', `Missing parameter '${field}'`);
  }
  return badJson(`Invalid field '${field}': ${issue.message}`);
}

// Fatal decoding: a body with invalid UTF-8 is not JSON (spec: JSON bodies are UTF-8).
const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseJsonBody(raw: Buffer): Record<string, unknown> {
  if (raw.length === 0) return {};
  let text: string;
  let parsed: unknown;
  try {
    text = utf8.decode(raw);
    parsed = JSON.parse(text);
  } catch {
    throw new MatrixError('M_NOT_JSON', 'Content not JSON.');
  }
  // Deep nesting would overflow the stack of the recursive code that walks bodies (schemas, canonical JSON).
  if (jsonNestingExceeds(text, MAX_BODY_NESTING)) {
    throw new MatrixError('M_BAD_JSON', `Content nested deeper than ${MAX_BODY_NESTING} levels.`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new MatrixError('M_BAD_JSON', 'Content must be a JSON object.');
  }
  return parsed as Record<string, unknown>;
}

// Plain `application/json` as Synapse and Dendrite send (express's res.json appends `; charset=utf-8`,
// which SyTest refuses); JSON is UTF-8 by definition (RFC 8259).
function sendJson(res: Response, status: number, body: unknown): void {
  const text = Buffer.from(JSON.stringify(body) ?? '{}', 'utf8');
  res.status(status);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', text.length);
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

function sendError(res: Response, err: MatrixError): void {
  if (res.headersSent) return;
  res.locals.errcode = err.errcode;
  closeWhenAnswered(res.req, res);
  sendJson(res, err.status, err.toJSON());
}

export function applyCors(app: Express): void {
  // Browser clients (Element Web) call from another origin (spec: "Web Browser Clients").
  app.use((req, res, next) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, POST, PUT, DELETE, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', 'X-Requested-With, Content-Type, Authorization, Date');
    res.setHeader('Access-Control-Expose-Headers', 'ETag, Content-Disposition');
    if (req.method === 'OPTIONS') {
      res.status(204).end();
      return;
    }
    next();
  });
}

export interface RequestLogOptions {
  /** One info line per request (Synapse's "Processed request"); false: at debug. */
  logRequests: boolean;
  metrics?: HttpMetrics;
  clientAddress?(req: Request): string;
}

// nginx's code for a client that went away before the answer: the log and metrics keep such requests apart.
const CLIENT_CLOSED = 499;

/**
 * One line per request when it ends: method, the path with secrets taken out of the query, status,
 * duration, the user (or appservice) or origin server, the client address, and the request id that an
 * error logged while handling it also carries. Probes (/health, metrics scrapes) are logged at debug only.
 */
export function requestLogging(app: Express, logger: Logger, options: RequestLogOptions): void {
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    const requestId = randomBytes(6).toString('hex');
    res.locals.requestId = requestId;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const status = res.writableFinished ? res.statusCode : CLIENT_CLOSED;
      const quiet = res.locals.quiet === true;
      if (!quiet) options.metrics?.requestFinished(req.method, (res.locals.servlet as string | undefined) ?? 'unrecognized', status, seconds);
      const line = {
        requestId,
        method: req.method,
        path: redactedUri(req.originalUrl),
        status,
        ms: Math.round(seconds * 1e4) / 10,
        ...(res.locals.user ? { user: res.locals.user as string } : {}),
        ...(res.locals.appservice ? { appservice: res.locals.appservice as string } : {}),
        ...(res.locals.origin ? { origin: res.locals.origin as string } : {}),
        ...(res.locals.errcode ? { errcode: res.locals.errcode as string } : {}),
        ip: options.clientAddress?.(req) ?? req.socket.remoteAddress,
      };
      if (options.logRequests && !quiet) logger.info(line, 'Processed request');
      else logger.debug(line, 'Processed request');
    };
    res.on('finish', end);
    res.on('close', end);
    next();
  });
}

export function mountRoutes(app: Express, routes: readonly RouteDefinition[], deps: HttpDeps): void {
  const paths = new Set<string>();
  for (const route of routes) {
    if (route.rawBody === 'stream' && !deps.bodyStore) throw new Error(`${route.path}: streamed bodies need HttpDeps.bodyStore`);
    // r0 and v3 are one servlet: the label does not split with the prefix a client happens to use.
    const servlet = servletName(route.prefixes[0]!, route.path);
    for (const prefix of route.prefixes) {
      const fullPath = prefix + route.path;
      paths.add(fullPath);
      const method = route.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete';
      app[method](fullPath, (req: Request, res: Response, next: NextFunction) => {
        res.locals.servlet = servlet;
        const handled = deps.metrics?.requestStarted(req.method, servlet);
        const work = handle(route, req, res, deps);
        if (handled) work.then(handled, handled);
        (deps.inFlight ? deps.inFlight.track(work) : work).catch(next);
      });
    }
  }
  // A known path with the wrong method is 405 M_UNRECOGNIZED (spec: "Common error codes").
  for (const path of paths) {
    app.all(path, (_req, res) => sendError(res, unrecognized('Unrecognized request method', 405)));
  }
}

// The body is read only after the token and the rate limit are checked: an anonymous client cannot make
// the server read (or keep in memory) megabytes it will refuse anyway.
async function handle(route: RouteDefinition, req: Request, res: Response, deps: HttpDeps): Promise<void> {
  let upload: StreamedBody | undefined;
  try {
    await answer(route, req, res, deps, (u) => (upload = u));
  } finally {
    // A no-op once the handler has moved the file into place.
    if (upload) await deps.bodyStore!.discard(upload.tempPath);
  }
}

async function answer(
  route: RouteDefinition,
  req: Request,
  res: Response,
  deps: HttpDeps,
  spooled: (upload: StreamedBody) => void,
): Promise<void> {
  const ip = deps.clientAddress?.(req) ?? req.socket.remoteAddress ?? 'unknown';
  const userAgent = req.headers['user-agent'];
  const token = extractToken(req);
  const limit = route.maxBodyBytes ?? deps.maxBodyBytes;

  let raw: Buffer = Buffer.alloc(0);
  let upload: StreamedBody | undefined;
  let requester: Requester | undefined;
  let server: ServerRequester | undefined;
  if (route.auth === 'server') {
    if (!deps.authenticateServer) throw new MatrixError('M_UNAUTHORIZED', 'Federation is not available', 401);
    // The signature covers the body, so it is read first; without any Authorization it is not read at all.
    if (!req.headers.authorization) {
      deps.logger.info({ method: req.method, path: req.path, errcode: 'M_UNAUTHORIZED', reason: 'Missing Authorization header' }, 'inbound federation request refused at authentication');
      throw new MatrixError('M_UNAUTHORIZED', 'Missing Authorization header', 401);
    }
    raw = await readBody(req, res, limit);
    server = await deps.authenticateServer({ method: req.method, uri: req.originalUrl, headers: req.headers, rawBody: raw });
    res.locals.origin = server.origin;
  } else if (route.auth !== 'none' && token !== undefined) {
    requester = await deps.authenticate(token, { ip, userAgent, query: req.query as Record<string, unknown>, path: req.path });
    res.locals.user = requester.userId;
    if (requester.appserviceId) res.locals.appservice = requester.appserviceId;
  } else if (route.auth === 'user') {
    throw new MatrixError('M_MISSING_TOKEN', 'Missing access token', 401);
  }
  if (requester?.isGuest && route.auth !== 'none' && !route.allowGuests) {
    throw new MatrixError('M_GUEST_ACCESS_FORBIDDEN', 'Guest access not allowed');
  }

  if (route.rateLimit) {
    const limiter = deps.rateLimiters[route.rateLimit];
    const exempt = requester !== undefined && deps.isRateLimitExempt?.(requester);
    if (limiter && !exempt) {
      const wait = limiter.take(requester?.userId ?? ip);
      if (wait > 0) throw limitExceeded(wait);
    }
  }

  if (route.rawBody === 'stream') {
    upload = await streamBody(req, res, limit, deps.bodyStore!);
    spooled(upload);
  } else if (route.auth !== 'server') {
    raw = await readBody(req, res, limit);
  }

  let body: unknown = undefined;
  if (!route.rawBody && route.body) {
    const parsed = route.body.safeParse(parseJsonBody(raw));
    if (!parsed.success) throw zodToMatrix(parsed.error, 'body');
    body = parsed.data;
  } else if (!route.rawBody && raw.length > 0 && (route.method === 'POST' || route.method === 'PUT')) {
    body = parseJsonBody(raw);
  }

  let query: unknown = req.query;
  if (route.query) {
    const parsed = route.query.safeParse(req.query);
    if (!parsed.success) throw zodToMatrix(parsed.error, 'query');
    query = parsed.data;
  }
  // No id, type or key in a path holds U+0000, and PostgreSQL text cannot: refused before any query.
  if (Object.values(req.params).some((v) => typeof v === 'string' && v.includes('\u0000'))) {
    throw new MatrixError('M_INVALID_PARAM', 'Path parameter contains U+0000');
  }

  const ctx: RequestContext = {
    params: req.params as Record<string, string>,
    path: req.path,
    query: query as Record<string, unknown>,
    body,
    rawBody: raw,
    upload,
    requester,
    server,
    accessToken: token,
    ip,
    userAgent,
    headers: req.headers,
    requestId: String(res.locals.requestId ?? ''),
  };
  const result = await route.handler(ctx);
  if (result instanceof RawReply) {
    res.status(result.status);
    for (const [k, v] of Object.entries(result.headers)) res.setHeader(k, v);
    if (Buffer.isBuffer(result.body)) res.end(result.body);
    // pipeline closes the source when the client goes away mid-download.
    else await pipeline(result.body as NodeJS.ReadableStream, res).catch(() => undefined);
    return;
  }
  if (result instanceof JsonReply) {
    for (const [k, v] of Object.entries(result.headers)) res.setHeader(k, v);
    sendJson(res, result.status, result.body);
    return;
  }
  sendJson(res, 200, result ?? {});
}

/** The answer to a path this server (or this listener) does not serve: 404 M_UNRECOGNIZED. */
export function refuseUnrecognized(res: Response): void {
  sendError(res, unrecognized());
}

/** Last in the chain: unknown paths, body-parser failures, and anything unexpected. */
export function errorHandling(app: Express, logger: Logger): void {
  app.use((_req: Request, res: Response) => refuseUnrecognized(res));
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof MatrixError) return sendError(res, err);
    const e = err as { type?: string; status?: number };
    if (e.type === 'entity.too.large') return sendError(res, new MatrixError('M_TOO_LARGE', 'Request body too large', 413));
    if (e.type === 'request.aborted') return;
    if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
      return sendError(res, new MatrixError('M_NOT_JSON', 'Unsupported content encoding'));
    }
    if (err instanceof URIError || e.status === 400) return sendError(res, new MatrixError('M_UNRECOGNIZED', 'Malformed request path', 400));
    logger.error({ requestId: res.locals.requestId, err }, 'unhandled error');
    sendError(res, new MatrixError('M_UNKNOWN', 'Internal server error', 500));
  });
}
