import { z } from 'zod';
import { MatrixError, forbidden, notFound } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { isStorableString } from '../rooms/eventLimits.js';
import { FederationRequestError } from '../federation/client.js';
import { serverNameOf } from '../federation/serverName.js';
import { getProfile, setProfileField } from '../storage/repositories/profiles.js';

const FIELDS = ['displayname', 'avatar_url'] as const;
type Field = (typeof FIELDS)[number];
// A path segment is only a field name if it is one of ours: `__proto__` or `constructor` never reach SQL.
const fieldOf = (name: string | undefined): Field | undefined => FIELDS.find((f) => f === name);

// Spec: Client-Server API, "Profiles".
export function profileRoutes(services: Services): RouteDefinition[] {
  const { db, rooms } = services;
  // Spec: Server-Server API, "Query" (GET /query/profile): a user of another server is asked for there.
  const loadRemote = async (userId: string, server: string, field?: Field) => {
    let res: Record<string, unknown>;
    try {
      res = await services.federation.client.request<Record<string, unknown>>({
        destination: server,
        method: 'GET',
        path: '/_matrix/federation/v1/query/profile',
        query: { user_id: userId, field },
      });
    } catch (err) {
      if (err instanceof FederationRequestError && err.remoteStatus === 404) throw notFound('Profile not found');
      throw err instanceof FederationRequestError ? err.forClient() : err;
    }
    const text = (v: unknown) => (typeof v === 'string' && v.length <= 1024 ? v : null);
    return { displayname: text(res?.displayname), avatar_url: text(res?.avatar_url) };
  };
  const load = async (userId: string, field?: Field) => {
    const server = serverNameOf(userId);
    if (server !== undefined && server !== services.serverName && userId.startsWith('@')) return loadRemote(userId, server, field);
    let profile = await getProfile(db.knex, userId);
    // Application Service API, "Querying users": a service may create an unknown user of its namespace.
    if (!profile && (await services.rooms.queryUser?.(userId))) profile = await getProfile(db.knex, userId);
    if (!profile) throw notFound('Profile not found');
    return profile;
  };
  const toBody = (p: { displayname: string | null; avatar_url: string | null }) => {
    const out: Record<string, string> = {};
    if (p.displayname !== null) out.displayname = p.displayname;
    if (p.avatar_url !== null) out.avatar_url = p.avatar_url;
    return out;
  };
  return [
    // Spec: GET /_matrix/client/v3/profile/{userId}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/profile/:userId',
      auth: 'optional',
      // Spec "Guest access" lets guests set a display name; as Synapse, they may read profiles too.
      allowGuests: true,
      handler: async ({ params }) => toBody(await load(params.userId!)),
    }),
    // Spec: GET /_matrix/client/v3/profile/{userId}/{keyName}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/profile/:userId/:field',
      auth: 'optional',
      allowGuests: true,
      handler: async ({ params }) => {
        const field = fieldOf(params.field);
        const profile = await load(params.userId!, field);
        if (!field) throw notFound('Profile field not set');
        // A known user without the field answers {} as Synapse does (SyTest reads it before setting one).
        return profile[field] === null ? {} : { [field]: profile[field] };
      },
    }),
    // Spec: PUT /_matrix/client/v3/profile/{userId}/{keyName}
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/profile/:userId/:field',
      auth: 'user',
      allowGuests: true,
      body: z.record(z.string(), z.unknown()),
      rateLimit: 'message',
      handler: async ({ params, body, requester }) => {
        const field = fieldOf(params.field);
        if (!field) throw new MatrixError('M_UNRECOGNIZED', 'Unknown profile field', 400);
        if (params.userId !== requester.userId) throw forbidden('You may only change your own profile');
        // Spec "Guest access": guests may set their display name only (as Synapse).
        if (requester.isGuest && field !== 'displayname') throw new MatrixError('M_GUEST_ACCESS_FORBIDDEN', 'Guest access not allowed', 403);
        const value = body[field];
        if (value !== undefined && value !== null && typeof value !== 'string') throw new MatrixError('M_BAD_JSON', `${field} must be a string`);
        if (typeof value === 'string' && value.length > 1024) throw new MatrixError('M_TOO_LARGE', `${field} is too long`, 400);
        // The value goes into member events and a text column: valid UTF-8, no U+0000.
        if (typeof value === 'string' && !isStorableString(value)) throw new MatrixError('M_BAD_JSON', `${field} must be valid UTF-8 without U+0000`);
        await load(requester.userId);
        await setProfileField(db.knex, requester.userId, field, (value as string | undefined) ?? null);
        await rooms.propagateProfile(requester.userId);
        return {};
      },
    }),
  ];
}
