import { z } from 'zod';
import { invalidParam, missingParam } from '../errors.js';
import type { Services } from '../homeserver.js';
import { CLIENT_V3, defineRoute, type RouteDefinition } from '../http/route.js';

// Spec: Client-Server API, "Server-side key backups" (/room_keys/version and /room_keys/keys). Served
// under v3 and r0 like the rest of the client API.

/** Room and session ids are stored in 255-character columns; longer ones name nothing we could hold. */
const MAX_ID_LENGTH = 255;
/** Stored in 32-bit integer columns; megolm indexes never come near this. */
const MAX_INT = 2_147_483_647;

// auth_data and session_data: any JSON value (objects for the spec's algorithm, see e2ee/backupAlgorithms.ts);
// optional in the schema so that a missing one is M_MISSING_PARAM, checked by `present`.
const opaque = z.json().optional();
const id = z.string().min(1).max(MAX_ID_LENGTH);

// KeyBackupData; extra fields are ignored, the four the spec defines are stored.
const keyBackupData = z.object({
  first_message_index: z.int().min(0).max(MAX_INT),
  forwarded_count: z.int().min(0).max(MAX_INT),
  is_verified: z.boolean(),
  session_data: opaque,
});
const roomKeyBackup = z.object({ sessions: z.record(id, keyBackupData) });
const allKeysBody = z.object({ rooms: z.record(id, roomKeyBackup) });

const createVersionBody = z.object({ algorithm: z.string().min(1).max(MAX_ID_LENGTH), auth_data: opaque });
const updateVersionBody = z.object({ algorithm: z.string().min(1), auth_data: opaque, version: z.string().optional() });

// `version` is required on every /room_keys/keys call (GET included); a missing one is M_MISSING_PARAM.
const versionQuery = z.object({ version: z.string().optional() });

function requireVersion(query: { version?: string | undefined }): string {
  if (query.version === undefined) throw missingParam("Missing parameter 'version'");
  return query.version;
}

function present<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw missingParam(`Missing parameter '${name}'`);
  return value;
}

function pathId(value: string | undefined, name: string): string {
  if (!value || value.length > MAX_ID_LENGTH) throw invalidParam(`Invalid ${name}`);
  return value;
}

export function keyBackupRoutes(services: Services): RouteDefinition[] {
  const { keyBackup } = services;
  return [
    // ---- backup versions ----
    defineRoute({
      method: 'POST',
      prefixes: CLIENT_V3,
      path: '/room_keys/version',
      auth: 'user',
      body: createVersionBody,
      handler: ({ requester, body }) => keyBackup.createVersion(requester.userId, body.algorithm, present(body.auth_data, 'auth_data')),
    }),
    // Spec: GET /_matrix/client/v3/room_keys/version
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/room_keys/version',
      auth: 'user',
      handler: ({ requester }) => keyBackup.getVersion(requester.userId),
    }),
    // Spec: GET /_matrix/client/v3/room_keys/version/{version}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/room_keys/version/:version',
      auth: 'user',
      handler: ({ requester, params }) => keyBackup.getVersion(requester.userId, params.version!),
    }),
    // Spec: PUT /_matrix/client/v3/room_keys/version/{version}
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/room_keys/version/:version',
      auth: 'user',
      body: updateVersionBody,
      handler: async ({ requester, params, body }) => {
        await keyBackup.updateVersion(requester.userId, params.version!, { ...body, auth_data: present(body.auth_data, 'auth_data') });
        return {};
      },
    }),
    // Spec: DELETE /_matrix/client/v3/room_keys/version/{version}
    defineRoute({
      method: 'DELETE',
      prefixes: CLIENT_V3,
      path: '/room_keys/version/:version',
      auth: 'user',
      handler: async ({ requester, params }) => {
        await keyBackup.deleteVersion(requester.userId, params.version!);
        return {};
      },
    }),

    // ---- keys: all rooms ----
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/room_keys/keys',
      auth: 'user',
      query: versionQuery,
      body: allKeysBody,
      handler: ({ requester, query, body }) => {
        const version = requireVersion(query);
        const keys = Object.fromEntries(Object.entries(body.rooms).map(([roomId, r]) => [roomId, r.sessions]));
        return keyBackup.uploadKeys(requester.userId, version, keys);
      },
    }),
    // Spec: GET /_matrix/client/v3/room_keys/keys
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/room_keys/keys',
      auth: 'user',
      query: versionQuery,
      handler: ({ requester, query }) => keyBackup.getAllKeys(requester.userId, requireVersion(query)),
    }),
    // Spec: DELETE /_matrix/client/v3/room_keys/keys
    defineRoute({
      method: 'DELETE',
      prefixes: CLIENT_V3,
      path: '/room_keys/keys',
      auth: 'user',
      query: versionQuery,
      handler: ({ requester, query }) => keyBackup.deleteKeys(requester.userId, requireVersion(query)),
    }),

    // ---- keys: one room ----
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/room_keys/keys/:roomId',
      auth: 'user',
      query: versionQuery,
      body: roomKeyBackup,
      handler: ({ requester, params, query, body }) => {
        const version = requireVersion(query);
        const roomId = pathId(params.roomId, 'room ID');
        return keyBackup.uploadKeys(requester.userId, version, { [roomId]: body.sessions });
      },
    }),
    // Spec: GET /_matrix/client/v3/room_keys/keys/{roomId}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/room_keys/keys/:roomId',
      auth: 'user',
      query: versionQuery,
      handler: ({ requester, params, query }) =>
        keyBackup.getRoomKeys(requester.userId, requireVersion(query), pathId(params.roomId, 'room ID')),
    }),
    // Spec: DELETE /_matrix/client/v3/room_keys/keys/{roomId}
    defineRoute({
      method: 'DELETE',
      prefixes: CLIENT_V3,
      path: '/room_keys/keys/:roomId',
      auth: 'user',
      query: versionQuery,
      handler: ({ requester, params, query }) =>
        keyBackup.deleteKeys(requester.userId, requireVersion(query), pathId(params.roomId, 'room ID')),
    }),

    // ---- keys: one session ----
    defineRoute({
      method: 'PUT',
      prefixes: CLIENT_V3,
      path: '/room_keys/keys/:roomId/:sessionId',
      auth: 'user',
      query: versionQuery,
      body: keyBackupData,
      handler: ({ requester, params, query, body }) => {
        const version = requireVersion(query);
        const roomId = pathId(params.roomId, 'room ID');
        const sessionId = pathId(params.sessionId, 'session ID');
        return keyBackup.uploadKeys(requester.userId, version, { [roomId]: { [sessionId]: body } });
      },
    }),
    // Spec: GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}
    defineRoute({
      method: 'GET',
      prefixes: CLIENT_V3,
      path: '/room_keys/keys/:roomId/:sessionId',
      auth: 'user',
      query: versionQuery,
      handler: ({ requester, params, query }) =>
        keyBackup.getSessionKey(
          requester.userId,
          requireVersion(query),
          pathId(params.roomId, 'room ID'),
          pathId(params.sessionId, 'session ID'),
        ),
    }),
    // Spec: DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}
    defineRoute({
      method: 'DELETE',
      prefixes: CLIENT_V3,
      path: '/room_keys/keys/:roomId/:sessionId',
      auth: 'user',
      query: versionQuery,
      handler: ({ requester, params, query }) =>
        keyBackup.deleteKeys(
          requester.userId,
          requireVersion(query),
          pathId(params.roomId, 'room ID'),
          pathId(params.sessionId, 'session ID'),
        ),
    }),
  ];
}
