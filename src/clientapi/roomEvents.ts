import { z } from 'zod';
import { MatrixError } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import type { Once } from '../http/transactions.js';
import type { EventOnce } from '../rooms/roomService.js';
import { resolveRoomEventFilterParam } from '../sync/filterService.js';

const jsonObject = z.record(z.string(), z.unknown());

/** A txnId guard for a room write, which yields an event id where the stored response is `{event_id}`. */
const eventOnce =
  (once: Once<{ event_id: string }>): EventOnce =>
  async (trx, work) =>
    (await once(trx, async () => ({ event_id: await work() }))).event_id;

// Sending, state, redaction and reading single events (spec: Client-Server API, "Events").
export function roomEventRoutes(services: Services): RouteDefinition[] {
  const { rooms, transactions } = services;
  const sizeLimit = 65536;
  const checkSize = (content: unknown) => {
    if (Buffer.byteLength(JSON.stringify(content)) > sizeLimit) throw new MatrixError('M_TOO_LARGE', 'Event too large', 413);
  };
  // Application Service API, "Timestamp massaging": an appservice requester may set origin_server_ts with `?ts=`.
  const massagedTs = (requester: { appserviceId: string | undefined }, query: Record<string, unknown>): { originServerTs?: number } => {
    if (requester.appserviceId === undefined || typeof query.ts !== 'string') return {};
    const ts = Number(query.ts);
    if (!/^\d+$/.test(query.ts) || !Number.isSafeInteger(ts)) throw new MatrixError('M_INVALID_PARAM', "Invalid parameter 'ts'");
    return { originServerTs: ts };
  };

  // Send and redact are served with a txnId (PUT, idempotent) and without one (legacy POST, a new event each call).
  const sendRoute = defineRoute({
    method: 'PUT',
    prefixes: CLIENT_V3,
    path: '',
    auth: 'user',
    allowGuests: true,
    body: jsonObject,
    rateLimit: 'message',
    handler: async ({ params, body, requester, query }) => {
      checkSize(body);
      const draft = { type: params.eventType!, content: body, ...massagedTs(requester, query) };
      const txnId = params.txnId;
      if (txnId === undefined) return { event_id: await rooms.sendEvent({ userId: requester.userId, deviceId: requester.deviceId }, params.roomId!, draft) };
      if (requester.deviceId !== undefined) {
        const actor = { userId: requester.userId, deviceId: requester.deviceId };
        return { event_id: await rooms.sendEventOnce(actor, params.roomId!, draft, txnId) };
      }
      // Tokens without a device (application services) keep their responses in the transaction store.
      return transactions.run<{ event_id: string }>(
        { userId: requester.userId, deviceId: `token:${requester.tokenId}`, scope: 'send', txnId },
        async (once) => ({
          event_id: await rooms.sendEvent({ userId: requester.userId }, params.roomId!, draft, { txnId }, undefined, eventOnce(once)),
        }),
      );
    },
  });
  const redactRoute = defineRoute({
    method: 'PUT',
    prefixes: CLIENT_V3,
    path: '',
    auth: 'user',
    body: z.object({ reason: z.string().optional() }).loose(),
    rateLimit: 'message',
    handler: ({ params, body, requester }) => {
      const actor = { userId: requester.userId, deviceId: requester.deviceId };
      const txnId = params.txnId;
      if (txnId === undefined) return rooms.redact(actor, params.roomId!, params.eventId!, body.reason).then((eventId) => ({ event_id: eventId }));
      return transactions.run<{ event_id: string }>(
        { userId: requester.userId, deviceId: requester.deviceId ?? `token:${requester.tokenId}`, scope: 'redact', txnId },
        async (once) => ({ event_id: await rooms.redact(actor, params.roomId!, params.eventId!, body.reason, { txnId }, eventOnce(once)) }),
      );
    },
  });

  return [
    // Spec: PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}
    defineRoute({ ...sendRoute, method: 'PUT', path: '/rooms/:roomId/send/:eventType/:txnId' }),
    // Legacy POST without a txnId (Synapse's register_txn_path; SyTest): Client-Server API, "Sending events to a room".
    defineRoute({ ...sendRoute, method: 'POST', path: '/rooms/:roomId/send/:eventType' }),
    // Spec: PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/state/:eventType{/:stateKey}',
      auth: 'user',
      body: jsonObject,
      rateLimit: 'message',
      handler: async ({ params, body, requester, query }) => {
        checkSize(body);
        const type = params.eventType!;
        const eventId = await rooms.sendEvent(
          { userId: requester.userId, deviceId: requester.deviceId },
          params.roomId!,
          { type, stateKey: params.stateKey ?? '', content: body, ...massagedTs(requester, query) },
        );
        return { event_id: eventId };
      },
    }),
    // Spec: GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/state/:eventType{/:stateKey}',
      auth: 'user',
      allowGuests: true,
      query: z.object({ format: z.enum(['content', 'event']).optional() }).loose(),
      handler: async ({ params, query, requester }) => {
        const state = await rooms.reader.visibleState(requester.userId, params.roomId!);
        const pdu = [...state.values()].find((p) => p.type === params.eventType && (p.state_key ?? '') === (params.stateKey ?? ''));
        if (!pdu) throw new MatrixError('M_NOT_FOUND', 'Event not found');
        if (query.format === 'event') {
          const [ev] = await rooms.reader.formatState(requester, new Map([['k', pdu]]));
          return ev;
        }
        return pdu.content;
      },
    }),
    // Spec: GET /_matrix/client/v3/rooms/{roomId}/state
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/state',
      auth: 'user',
      allowGuests: true,
      handler: ({ params, requester }) => rooms.reader.stateEvents(requester, params.roomId!),
    }),
    // Spec: PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}
    defineRoute({ ...redactRoute, method: 'PUT', path: '/rooms/:roomId/redact/:eventId/:txnId' }),
    // Legacy POST without a txnId (Synapse's register_txn_path; SyTest): Client-Server API, "Redactions".
    defineRoute({ ...redactRoute, method: 'POST', path: '/rooms/:roomId/redact/:eventId' }),
    // Spec: GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/event/:eventId',
      auth: 'user',
      allowGuests: true,
      handler: ({ params, requester }) => rooms.reader.getEvent(requester, params.roomId!, params.eventId!),
    }),
    // Spec: GET /_matrix/client/v3/rooms/{roomId}/messages
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/messages',
      auth: 'user',
      allowGuests: true,
      query: z
        .object({
          from: z.string().optional(),
          to: z.string().optional(),
          dir: z.enum(['b', 'f']).default('b'),
          limit: z.coerce.number().int().min(0).default(10),
          filter: z.string().optional(),
        })
        .loose(),
      handler: async ({ params, query, requester }) => {
        const filter = await resolveRoomEventFilterParam(services.sync.filters, requester.userId, query.filter);
        return rooms.reader.messages(requester, params.roomId!, { from: query.from, to: query.to, dir: query.dir, limit: query.limit, filter });
      },
    }),
    // Spec: GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/context/:eventId',
      auth: 'user',
      allowGuests: true,
      query: z.object({ limit: z.coerce.number().int().min(0).default(10), filter: z.string().optional() }).loose(),
      handler: async ({ params, query, requester }) => {
        const filter = await resolveRoomEventFilterParam(services.sync.filters, requester.userId, query.filter);
        return rooms.reader.context(requester, params.roomId!, params.eventId!, query.limit, filter);
      },
    }),
    // Spec: GET /_matrix/client/v3/rooms/{roomId}/members
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/members',
      auth: 'user',
      allowGuests: true,
      query: z
        .object({
          at: z.string().optional(),
          membership: z.enum(['join', 'invite', 'knock', 'leave', 'ban']).optional(),
          not_membership: z.enum(['join', 'invite', 'knock', 'leave', 'ban']).optional(),
        })
        .loose(),
      handler: async ({ params, query, requester }) => ({
        chunk: await rooms.reader.members(requester, params.roomId!, { at: query.at, membership: query.membership, notMembership: query.not_membership }),
      }),
    }),
    // Spec: GET /_matrix/client/v3/rooms/{roomId}/joined_members
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/rooms/:roomId/joined_members',
      auth: 'user',
      handler: async ({ params, requester }) => ({ joined: await rooms.reader.joinedMembers(requester, params.roomId!) }),
    }),
  ];
}
