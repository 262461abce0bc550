import { MatrixError } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { dict } from '../util/dict.js';

// Spec: Client-Server API, "Third-party networks" (/thirdparty/*) and "Adding Account Administrative
// Contact Information" (/account/3pid*). This server keeps no third-party identifiers (capability
// m.3pid_changes is false): the list is empty and every change is refused with the spec's 3PID errcodes.

const threepidError = (code: 'M_THREEPID_DENIED' | 'M_THREEPID_AUTH_FAILED', message: string, status: number) =>
  new MatrixError(code, message, status);

function fields(query: Record<string, unknown>): Record<string, string> {
  const out = dict<string>();
  for (const [k, v] of Object.entries(query)) if (typeof v === 'string' && k !== 'access_token') out[k] = v;
  return out;
}

export function thirdPartyRoutes(services: Services): RouteDefinition[] {
  const { thirdParty } = services.directory;
  const get = (path: string, handler: (ctx: { params: Record<string, string>; query: Record<string, unknown> }) => Promise<unknown>) =>
    defineRoute({ method: 'GET', prefixes: CLIENT_V3, path, auth: 'user', handler });
  return [
    // Spec: GET /thirdparty/protocols
    get('/thirdparty/protocols', () => thirdParty.protocols()),
    // Spec: GET /thirdparty/protocol/{protocol}
    get('/thirdparty/protocol/:protocol', ({ params }) => thirdParty.protocol(params.protocol!)),
    // Spec: GET /thirdparty/location/{protocol}
    get('/thirdparty/location/:protocol', ({ params, query }) => thirdParty.locations(params.protocol!, fields(query))),
    // Spec: GET /thirdparty/user/{protocol}
    get('/thirdparty/user/:protocol', ({ params, query }) => thirdParty.users(params.protocol!, fields(query))),
    // Spec: GET /thirdparty/location?alias=
    get('/thirdparty/location', ({ query }) => {
      if (typeof query.alias !== 'string') throw new MatrixError('M_MISSING_PARAM', "Missing parameter 'alias'");
      return thirdParty.locationsForAlias(query.alias);
    }),
    // Spec: GET /thirdparty/user?userid=
    get('/thirdparty/user', ({ query }) => {
      if (typeof query.userid !== 'string') throw new MatrixError('M_MISSING_PARAM', "Missing parameter 'userid'");
      return thirdParty.usersForUserId(query.userid);
    }),
  ];
}

export function threepidRoutes(): RouteDefinition[] {
  const post = (path: string, auth: 'user' | 'optional', error: () => MatrixError) =>
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path,
      auth,
      handler: () => {
        throw error();
      },
    });
  return [
    // Spec: GET /account/3pid
    defineRoute({ method: 'GET', prefixes: CLIENT_V3, path: '/account/3pid', auth: 'user', handler: () => ({ threepids: [] }) }),
    // Spec: POST /account/3pid (deprecated): the identity server's credentials are never accepted.
    post('/account/3pid', 'user', () => threepidError('M_THREEPID_AUTH_FAILED', 'Third-party identifiers are not supported on this server', 403)),
    // Spec: POST /account/3pid/add — there is never a validated session to add from.
    post('/account/3pid/add', 'user', () => threepidError('M_THREEPID_AUTH_FAILED', 'No validated third-party identifier session found', 400)),
    // Spec: POST /account/3pid/bind
    post('/account/3pid/bind', 'user', () => threepidError('M_THREEPID_DENIED', 'Binding third-party identifiers is not supported on this server', 403)),
    // Spec: POST /account/3pid/delete and /unbind — the account has none.
    post('/account/3pid/delete', 'user', () => new MatrixError('M_THREEPID_NOT_FOUND', 'No such third-party identifier on this account', 400)),
    post('/account/3pid/unbind', 'user', () => new MatrixError('M_THREEPID_NOT_FOUND', 'No such third-party identifier on this account', 400)),
    // Spec: POST /account/3pid/{email,msisdn}/requestToken
    post('/account/3pid/email/requestToken', 'optional', () => threepidError('M_THREEPID_DENIED', 'Adding email addresses is not supported on this server', 403)),
    post('/account/3pid/msisdn/requestToken', 'optional', () => threepidError('M_THREEPID_DENIED', 'Adding phone numbers is not supported on this server', 403)),
  ];
}
