import { timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';

export interface AppserviceHandlers {
  /** One transaction; resolves when it is durably handled (it is answered only then). */
  onTransaction(txnId: string, body: Record<string, unknown>): Promise<void>;
  /** Whether the user exists now (created on demand), for GET /users. */
  onUserQuery(userId: string): Promise<boolean>;
  /** Whether the alias exists now (room created on demand), for GET /rooms. */
  onAliasQuery(alias: string): Promise<boolean>;
  /** Third-party protocol metadata, for GET /thirdparty/protocol. */
  protocol?(name: string): Record<string, unknown> | undefined;
  /** Public GET routes served before the hs_token check (the IRC bridge's media links), by path pattern. */
  publicRoutes?: Array<{ path: string; handler: (req: Request, res: Response) => Promise<void> }>;
}

interface Logger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const matrixError = (res: Response, status: number, errcode: string, error: string): void => {
  res.status(status).json({ errcode, error });
};

function tokenMatches(given: string | undefined, expected: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The HTTP side of an application service: what the homeserver calls (Application Service API). */
export function createAppserviceApp(hsToken: string, handlers: AppserviceHandlers, logger: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  for (const route of handlers.publicRoutes ?? []) {
    app.get(route.path, (req, res, next) => {
      route.handler(req, res).catch(next);
    });
  }
  app.use(express.json({ limit: '50mb', type: () => true }));

  // Application Service API, Authorization: the homeserver proves itself with hs_token.
  app.use('/', (req: Request, res: Response, next: NextFunction) => {
    const header = req.headers.authorization;
    const bearer = header?.startsWith('Bearer ') ? header.slice(7) : undefined;
    const legacy = typeof req.query.access_token === 'string' ? req.query.access_token : undefined;
    const given = bearer ?? legacy;
    if (!given) return matrixError(res, 401, 'M_UNAUTHORIZED', 'No hs_token given');
    if (!tokenMatches(given, hsToken)) return matrixError(res, 403, 'M_FORBIDDEN', 'Wrong hs_token');
    next();
  });

  // Application Service API: PUT /_matrix/app/v1/transactions/{txnId} (and the legacy unprefixed path).
  const transaction = async (req: Request, res: Response) => {
    const body = req.body as unknown;
    if (typeof body !== 'object' || body === null || !Array.isArray((body as { events?: unknown }).events)) {
      return matrixError(res, 400, 'M_BAD_JSON', 'A transaction needs an events array');
    }
    try {
      await handlers.onTransaction(String(req.params.txnId), body as Record<string, unknown>);
      res.json({});
    } catch (err) {
      // The homeserver retries the same transaction later; nothing is acknowledged that was not handled.
      logger.error({ err: (err as Error).message, txnId: req.params.txnId }, 'transaction failed, the homeserver will retry');
      matrixError(res, 500, 'M_UNKNOWN', 'The bridge could not handle this transaction yet');
    }
  };
  app.put('/_matrix/app/v1/transactions/:txnId', transaction);
  app.put('/transactions/:txnId', transaction);

  // Application Service API: GET /_matrix/app/v1/users/{userId}.
  const userQuery = async (req: Request, res: Response) => {
    const ok = await handlers.onUserQuery(String(req.params.userId)).catch(() => false);
    if (ok) res.json({});
    else matrixError(res, 404, 'M_NOT_FOUND', 'No such user on the bridged network');
  };
  app.get('/_matrix/app/v1/users/:userId', userQuery);
  app.get('/users/:userId', userQuery);

  // Application Service API: GET /_matrix/app/v1/rooms/{roomAlias}.
  const aliasQuery = async (req: Request, res: Response) => {
    const ok = await handlers.onAliasQuery(String(req.params.alias)).catch((err: Error) => {
      logger.warn({ err: err.message, alias: req.params.alias }, 'alias query failed');
      return false;
    });
    if (ok) res.json({});
    else matrixError(res, 404, 'M_NOT_FOUND', 'No such channel on the bridged network');
  };
  app.get('/_matrix/app/v1/rooms/:alias', aliasQuery);
  app.get('/rooms/:alias', aliasQuery);

  // Application Service API: POST /_matrix/app/v1/ping.
  app.post('/_matrix/app/v1/ping', (_req, res) => {
    res.json({});
  });

  // Application Service API: GET /_matrix/app/v1/thirdparty/protocol/{protocol}.
  app.get('/_matrix/app/v1/thirdparty/protocol/:protocol', (req, res) => {
    const p = handlers.protocol?.(String(req.params.protocol));
    if (p) res.json(p);
    else matrixError(res, 404, 'M_NOT_FOUND', 'Unknown protocol');
  });
  app.get(['/_matrix/app/v1/thirdparty/user/:protocol', '/_matrix/app/v1/thirdparty/location/:protocol'], (_req, res) => {
    res.json([]);
  });

  app.use((_req: Request, res: Response) => matrixError(res, 404, 'M_UNRECOGNIZED', 'Unrecognized request'));
  app.use((err: Error & { type?: string; status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    if (err.type === 'entity.parse.failed') return matrixError(res, 400, 'M_NOT_JSON', 'Body is not JSON');
    if (err.type === 'entity.too.large') return matrixError(res, 413, 'M_TOO_LARGE', 'Body too large');
    logger.error({ err: err.message }, 'appservice request failed');
    matrixError(res, 500, 'M_UNKNOWN', 'Internal error');
  });
  return app;
}

export async function listen(app: express.Express, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, (err?: Error) => (err ? reject(err) : resolve(server)));
  });
}
