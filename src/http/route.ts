import type { z } from 'zod';

// Who may call a route: nobody in particular, a logged-in user, or either (handler sees undefined);
// 'server': another homeserver, authenticated by HttpDeps.authenticateServer (federation X-Matrix).
export type AuthMode = 'none' | 'user' | 'optional' | 'server';

/** A remote homeserver whose request signature was verified. */
export interface ServerRequester {
  origin: string;
}

export interface Requester {
  userId: string;
  deviceId: string | undefined;
  tokenId: number | undefined;
  isGuest: boolean;
  appserviceId: string | undefined;
}

export type RateLimitName = 'message' | 'registration' | 'login';

/** A request body written to a temporary file as it arrived; the handler moves the file into place. */
export interface StreamedBody {
  tempPath: string;
  size: number;
  sha256: string;
}

/** Where 'stream' routes spool their bodies (the media store's tmp directory, so a rename is atomic). */
export interface BodyStore {
  /** Writes and hashes the chunks to a new temporary file; removes it when the source fails. */
  writeStream(source: AsyncIterable<Buffer>): Promise<StreamedBody>;
  discard(tempPath: string): Promise<void>;
}

export interface RequestContext<B = unknown, Q = Record<string, unknown>> {
  params: Record<string, string>;
  /** The path as received (undecoded), for endpoints whose meaning depends on a trailing slash. */
  path: string;
  query: Q;
  body: B;
  rawBody: Buffer;
  /** Set on `rawBody: 'stream'` routes: the body on disk; removed after the handler unless it moved it. */
  upload: StreamedBody | undefined;
  requester: Requester | undefined;
  /** Set on 'server' routes: the verified origin server. */
  server: ServerRequester | undefined;
  /** The access token as presented, for endpoints that act on the calling token itself (logout). */
  accessToken: string | undefined;
  ip: string;
  userAgent: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  requestId: string;
}

export interface AuthedContext<B = unknown, Q = Record<string, unknown>> extends RequestContext<B, Q> {
  requester: Requester;
}

export interface ServerContext<B = unknown, Q = Record<string, unknown>> extends RequestContext<B, Q> {
  server: ServerRequester;
}

type Ctx<A extends AuthMode, B, Q> = A extends 'user' ? AuthedContext<B, Q> : A extends 'server' ? ServerContext<B, Q> : RequestContext<B, Q>;

/** A non-200 JSON reply, or a reply with headers. */
export class JsonReply {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** Bytes with a content type, for media and other non-JSON replies. */
export class RawReply {
  constructor(
    readonly status: number,
    readonly body: Buffer | NodeJS.ReadableStream,
    readonly headers: Record<string, string>,
  ) {}
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface RouteDefinition {
  method: HttpMethod;
  /** Path prefixes the route is served under, e.g. ['/_matrix/client/v3', '/_matrix/client/r0']. */
  prefixes: readonly string[];
  /** Express 5 path below the prefix, e.g. '/rooms/:roomId/send/:eventType/:txnId'. */
  path: string;
  auth: AuthMode;
  body?: z.ZodType;
  query?: z.ZodType;
  /**
   * Accept any bytes as the body instead of a JSON object: `true` buffers them (ctx.rawBody), 'stream'
   * spools them to a temporary file (ctx.upload) after authentication, so memory does not grow with size.
   */
  rawBody?: boolean | 'stream';
  /** Largest body accepted, enforced from Content-Length and again while reading (413 M_TOO_LARGE). */
  maxBodyBytes?: number;
  rateLimit?: RateLimitName;
  /** Guests may call this route (spec: "Guest access"). */
  allowGuests?: boolean;
  handler(ctx: RequestContext<any, any>): Promise<unknown> | unknown;
}

// Infer the handler's body/query types from the zod schemas it declares.
export function defineRoute<
  B extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
  A extends AuthMode = AuthMode,
  R extends boolean | 'stream' | undefined = undefined,
>(route: {
  method: HttpMethod;
  prefixes: readonly string[];
  path: string;
  auth: A;
  body?: B;
  query?: Q;
  rawBody?: R;
  maxBodyBytes?: number;
  rateLimit?: RateLimitName;
  allowGuests?: boolean;
  handler(
    ctx: Ctx<A, B extends z.ZodType ? z.output<B> : unknown, Q extends z.ZodType ? z.output<Q> : Record<string, unknown>> &
      (R extends 'stream' ? { upload: StreamedBody } : unknown),
  ): Promise<unknown> | unknown;
}): RouteDefinition {
  return route as RouteDefinition;
}

/** The client API prefixes: v3 plus the legacy r0 that older clients still call (as Synapse does). */
export const CLIENT_V3 = ['/_matrix/client/v3', '/_matrix/client/r0'] as const;
export const CLIENT_V3_ONLY = ['/_matrix/client/v3'] as const;
export const CLIENT_V1 = ['/_matrix/client/v1'] as const;
