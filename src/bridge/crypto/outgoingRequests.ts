/**
 * Sends an OlmMachine's outgoing requests through the Client-Server API, as the machine's user and device
 * (application service identity assertion with MSC3202 device masquerading), and returns the answer as the
 * JSON text markRequestAsSent takes.
 */
import {
  KeysBackupRequest,
  KeysClaimRequest,
  KeysQueryRequest,
  KeysUploadRequest,
  RoomMessageRequest,
  SignatureUploadRequest,
  ToDeviceRequest,
  type OutgoingRequest,
  type UploadSigningKeysRequest,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import { seg, type HomeserverApi } from '../matrix/homeserverApi.js';

export type { OutgoingRequest };

export interface DeviceIdentity {
  userId: string;
  deviceId: string;
}

const V3 = '/_matrix/client/v3';

interface Route {
  method: 'POST' | 'PUT';
  path: string;
  query?: Record<string, string>;
}

function route(req: OutgoingRequest): Route {
  if (req instanceof KeysUploadRequest) return { method: 'POST', path: `${V3}/keys/upload` };
  if (req instanceof KeysQueryRequest) return { method: 'POST', path: `${V3}/keys/query` };
  if (req instanceof KeysClaimRequest) return { method: 'POST', path: `${V3}/keys/claim` };
  if (req instanceof ToDeviceRequest) return { method: 'PUT', path: `${V3}/sendToDevice/${seg(req.event_type)}/${seg(req.txn_id)}` };
  if (req instanceof SignatureUploadRequest) return { method: 'POST', path: `${V3}/keys/signatures/upload` };
  if (req instanceof RoomMessageRequest) return { method: 'PUT', path: `${V3}/rooms/${seg(req.room_id)}/send/${seg(req.event_type)}/${seg(req.txn_id)}` };
  if (req instanceof KeysBackupRequest) return { method: 'PUT', path: `${V3}/room_keys/keys`, query: { version: req.version } };
  throw new Error(`unsupported outgoing request type ${String((req as { type?: unknown }).type)}`);
}

/** A short name of the request type, for logs. */
export function requestKind(req: OutgoingRequest): string {
  return req.constructor.name.replace(/Request$/, '');
}

/** Sends the request; throws MatrixApiError when the homeserver refuses it or cannot be reached. */
export async function sendOutgoingRequest(api: HomeserverApi, who: DeviceIdentity, req: OutgoingRequest): Promise<string> {
  const r = route(req);
  const answer = await api.request(r.method, r.path, {
    userId: who.userId,
    deviceId: who.deviceId,
    ...(r.query ? { query: r.query } : {}),
    body: JSON.parse(req.body) as unknown,
  });
  return JSON.stringify(answer);
}

/**
 * Uploads cross-signing public keys (POST /keys/device_signing/upload). Not an outgoing request of the
 * machine: nothing is marked as sent. The first upload of a user needs no user-interactive auth (MSC3967).
 */
export async function sendSigningKeysUpload(api: HomeserverApi, who: DeviceIdentity, req: UploadSigningKeysRequest): Promise<void> {
  await api.request('POST', `${V3}/keys/device_signing/upload`, { userId: who.userId, deviceId: who.deviceId, body: JSON.parse(req.body) as unknown });
}
