import { z } from 'zod';
import { MatrixError } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { idServerName } from '../identity/identityClient.js';
import { dict } from '../util/dict.js';

// Spec: Client-Server API, "Third-party networks" (/thirdparty/*) and "Adding Account Administrative
// Contact Information" (/account/3pid*). This server keeps no third-party identifiers of its own (capability
// m.3pid_changes is false): the list is empty and adding one is refused with the spec's 3PID errcodes.
// Binding on an identity server, and unbinding, are passed on to it (src/identity/bindings.ts).

// The legacy /unstable prefix as well: older clients (and SyTest) bind and unbind there.
const BIND_PREFIXES = [...CLIENT_V3, '/_matrix/client/unstable'] as const;
const bindBody = z.looseObject({
  id_server: idServerName,
  id_access_token: z.string().min(1).max(1024),
  sid: z.string().min(1).max(255),
  client_secret: z.string().min(1).max(255).regex(/^[0-9a-zA-Z.=_-]+$/, 'must match [0-9a-zA-Z.=_-]+'),
});
const unbindBody = z.looseObject({
  medium: z.string().min(1).max(64),
  address: z.string().min(1).max(512),
  id_server: idServerName.optional(),
});

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

export function threepidRoutes(services: Services): RouteDefinition[] {
  const { bindings } = services.identity;
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
    defineRoute({
      method: 'POST',
      prefixes: BIND_PREFIXES,
      path: '/account/3pid/bind',
      auth: 'user',
      body: bindBody,
      handler: async ({ body, requester }) => {
        await bindings.bind(requester.userId, body);
        return {};
      },
    }),
    // Spec: POST /account/3pid/delete and /unbind — the account keeps none itself; the identity server's binding goes
    // (at `id_server`, or wherever it was bound through us), as Synapse.
    ...(['/account/3pid/delete', '/account/3pid/unbind'] as const).map((path) =>
      defineRoute({
        method: 'POST',
        prefixes: BIND_PREFIXES,
        path,
        auth: 'user',
        body: unbindBody,
        handler: async ({ body, requester }) => ({
          id_server_unbind_result: await bindings.unbind(requester.userId, body.medium, body.address, body.id_server),
        }),
      }),
    ),
    // Spec: POST /account/3pid/{email,msisdn}/requestToken
    post('/account/3pid/email/requestToken', 'optional', () => threepidError('M_THREEPID_DENIED', 'Adding email addresses is not supported on this server', 403)),
    post('/account/3pid/msisdn/requestToken', 'optional', () => threepidError('M_THREEPID_DENIED', 'Adding phone numbers is not supported on this server', 403)),
  ];
}
