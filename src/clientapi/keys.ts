import { z } from 'zod';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';
import { parseSyncToken } from '../sync/token.js';
import { MatrixError, badJson } from '../errors.js';
import { serverNameOf } from '../federation/serverName.js';
import { isValidUserId } from '../rooms/authRules.js';

const keyObject = z.record(z.string(), z.unknown());

const deviceKeys = z
  .object({
    user_id: z.string(),
    device_id: z.string(),
    algorithms: z.array(z.string()),
    keys: z.record(z.string(), z.string()),
    signatures: z.record(z.string(), z.record(z.string(), z.string())),
  })
  .loose();

/** Malformed device keys, missing fields included, are M_BAD_JSON (as Synapse; SyTest checks the errcode). */
function parseDeviceKeys(value: unknown): z.infer<typeof deviceKeys> | undefined {
  if (value === undefined) return undefined;
  const parsed = deviceKeys.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw badJson(`Invalid field 'device_keys.${issue.path.join('.')}': ${issue.message}`);
  }
  return parsed.data;
}

const uploadBody = z
  .object({
    device_keys: z.unknown().optional(),
    one_time_keys: z.record(z.string(), z.union([z.string(), keyObject])).optional(),
    fallback_keys: z.record(z.string(), z.union([z.string(), keyObject])).optional(),
    'org.matrix.msc2732.fallback_keys': z.record(z.string(), z.union([z.string(), keyObject])).optional(),
  })
  .loose();

/** These maps are keyed by user ID (spec); anything else (`constructor`, `__proto__` …) is refused, as Synapse does. */
function requireUserIds(map: Record<string, unknown>, field: string): void {
  for (const userId of Object.keys(map)) {
    if (!isValidUserId(userId) || serverNameOf(userId) === undefined) throw new MatrixError('M_INVALID_PARAM', `${field} must be keyed by user IDs`);
  }
}

// Spec: Client-Server API, "Key management API" and "Cross-signing".
export function keyRoutes(services: Services): RouteDefinition[] {
  const { e2ee } = services;
  return [
    // Spec: POST /_matrix/client/v3/keys/upload
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/keys/upload',
      auth: 'user',
      allowGuests: true,
      body: uploadBody,
      handler: ({ body, requester }) =>
        e2ee.deviceKeys.upload(requester, {
          device_keys: parseDeviceKeys(body.device_keys),
          one_time_keys: body.one_time_keys,
          fallback_keys: body.fallback_keys ?? body['org.matrix.msc2732.fallback_keys'],
        }),
    }),
    // Spec: POST /_matrix/client/v3/keys/query
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/keys/query',
      auth: 'user',
      allowGuests: true,
      body: z.object({ device_keys: z.record(z.string(), z.array(z.string())), timeout: z.number().optional() }).loose(),
      handler: ({ body, requester }) => {
        requireUserIds(body.device_keys, 'device_keys');
        return e2ee.deviceKeys.query(requester, body.device_keys);
      },
    }),
    // Spec: POST /_matrix/client/v3/keys/claim
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/keys/claim',
      auth: 'user',
      allowGuests: true,
      body: z.object({ one_time_keys: z.record(z.string(), z.record(z.string(), z.string())), timeout: z.number().optional() }).loose(),
      handler: ({ body }) => {
        requireUserIds(body.one_time_keys, 'one_time_keys');
        return e2ee.deviceKeys.claim(body.one_time_keys);
      },
    }),
    // Spec: GET /_matrix/client/v3/keys/changes
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/keys/changes',
      auth: 'user',
      query: z.object({ from: z.string(), to: z.string() }).loose(),
      handler: async ({ query, requester }) => {
        const from = parseSyncToken(query.from);
        const to = parseSyncToken(query.to);
        if (from.timeline > to.timeline && from.deviceLists > to.deviceLists) throw new MatrixError('M_INVALID_PARAM', 'from is after to');
        return e2ee.deviceLists.delta(requester.userId, from, to);
      },
    }),
    // Spec: POST /_matrix/client/v3/keys/device_signing/upload (also under /unstable, where Element still posts)
    defineRoute({
      method: 'POST',
      prefixes: [...CLIENT_V3, '/_matrix/client/unstable'],
      path: '/keys/device_signing/upload',
      auth: 'user',
      body: z.object({ master_key: keyObject.optional(), self_signing_key: keyObject.optional(), user_signing_key: keyObject.optional(), auth: z.unknown().optional() }).loose(),
      handler: async ({ body, requester }) => {
        await e2ee.crossSigning.uploadDeviceSigningKeys(requester, body);
        return {};
      },
    }),
    // Spec: POST /_matrix/client/v3/keys/signatures/upload (also under /unstable, as Synapse serves it)
    defineRoute({
      method: 'POST',
      prefixes: [...CLIENT_V3, '/_matrix/client/unstable'],
      path: '/keys/signatures/upload',
      auth: 'user',
      body: z.record(z.string(), z.record(z.string(), keyObject)),
      handler: ({ body, requester }) => e2ee.crossSigning.uploadSignatures(requester, body),
    }),
    // Spec: PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/sendToDevice/:eventType/:txnId',
      auth: 'user',
      allowGuests: true,
      body: z.object({ messages: z.record(z.string(), z.record(z.string(), keyObject)) }).loose(),
      handler: ({ params, body, requester }) => {
        requireUserIds(body.messages, 'messages');
        return services.transactions.run<Record<string, never>>(
          { userId: requester.userId, deviceId: requester.deviceId ?? `token:${requester.tokenId}`, scope: 'sendToDevice', txnId: params.txnId! },
          async (once) => {
            await e2ee.toDevice.send(requester.userId, params.eventType!, body.messages, (trx, work) => once(trx, async () => (await work(), {})));
            return {};
          },
        );
      },
    }),
  ];
}
