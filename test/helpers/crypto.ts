import { ClientEvent, KnownMembership, SyncState, createClient, type IStartClientOpts, type MatrixClient, type MatrixEvent } from 'matrix-js-sdk';
import {
  CryptoEvent,
  VerificationPhase,
  VerifierEvent,
  type ShowSasCallbacks,
  type VerificationRequest,
  type Verifier,
} from 'matrix-js-sdk/lib/crypto-api/index.js';
import { logger as sdkLogger, type Logger } from 'matrix-js-sdk/lib/logger.js';
import type { SlidingSync } from 'matrix-js-sdk/lib/sliding-sync.js';
import { request } from './http.js';
import { loginDevice, specCheckedFetch, type TestUser } from './users.js';

export { loginDevice };

// matrix-js-sdk clients with the Rust crypto stack (in-memory store), driven against a real test server.

/** The crypto stack logs through the client's logger, below the level test/setup.ts sets on the global one. */
export const quietLogger: Logger = {
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  getChild: () => quietLogger,
};

// Child loggers of the SDK's global logger (MatrixRTC sessions and the like) are created at debug level and
// copy their parent's method factory; a factory that drops everything below error keeps them quiet too.
if (process.env.SKJOL_TEST_SDK_LOG !== 'debug') {
  const root = sdkLogger as unknown as { methodFactory: (method: string, level: number, name: string) => (...args: unknown[]) => void };
  const original = root.methodFactory;
  root.methodFactory = (method, level, name) => (method === 'error' ? original(method, level, name) : () => {});
}

/**
 * Responses that did not match the spec's schema. The check fails the request, but the SDK retries or
 * swallows failures of its background requests (key upload, query, claim), so tests also assert this is empty.
 */
export const specViolations: string[] = [];

const recordingSpecFetch: typeof fetch = async (input, init) => {
  try {
    return await specCheckedFetch(input, init);
  } catch (err) {
    const message = (err as Error).message ?? '';
    if (message.startsWith('Response does not match the Matrix spec')) specViolations.push(`${init?.method ?? 'GET'} ${String(input)}: ${message}`);
    throw err;
  }
};

/** Polls `fn` until it returns something other than undefined. */
export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Deletes a device through DELETE /devices/{id} with the password stage of user-interactive auth. */
export async function deleteDevice(baseUrl: string, user: TestUser, deviceId: string): Promise<void> {
  const path = `/_matrix/client/v3/devices/${encodeURIComponent(deviceId)}`;
  const first = await request(baseUrl, 'DELETE', path, { token: user.accessToken, body: {} });
  if (first.status !== 401) throw new Error(`expected a UIA challenge, got ${first.status} ${JSON.stringify(first.body)}`);
  const res = await request(baseUrl, 'DELETE', path, {
    token: user.accessToken,
    body: {
      auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: user.userId }, password: user.password, session: first.body.session },
    },
  });
  if (res.status !== 200) throw new Error(`delete device failed: ${res.status} ${JSON.stringify(res.body)}`);
}

/**
 * A client with Rust crypto for `user` (responses checked against the spec), started and through its first sync;
 * with `slidingSync` it syncs only through that (MSC4186) instead of /sync.
 */
export async function startCryptoClient(
  baseUrl: string,
  user: TestUser,
  options: { initialSyncLimit?: number; slidingSync?: (client: MatrixClient) => SlidingSync } = {},
): Promise<MatrixClient> {
  const client = createClient({
    baseUrl,
    userId: user.userId,
    accessToken: user.accessToken,
    deviceId: user.deviceId,
    fetchFn: recordingSpecFetch,
    ...(process.env.SKJOL_TEST_SDK_LOG === 'debug' ? {} : { logger: quietLogger }),
  });
  await client.initRustCrypto({ useIndexedDB: false });
  await startPrepared(
    client,
    { initialSyncLimit: options.initialSyncLimit ?? 30, ...(options.slidingSync ? { slidingSync: options.slidingSync(client) } : {}) },
    `${user.userId}/${user.deviceId}`,
  );
  return client;
}

/** Starts a client and waits until its first sync (or sliding sync answer) is processed. */
export async function startPrepared(client: MatrixClient, opts: IStartClientOpts, label: string): Promise<void> {
  const prepared = new Promise<void>((resolve) => {
    const on = (state: SyncState) => {
      if (state === SyncState.Prepared) {
        client.off(ClientEvent.Sync, on);
        resolve();
      }
    };
    client.on(ClientEvent.Sync, on);
  });
  await client.startClient(opts);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: first sync timed out`)), 15_000);
  });
  try {
    await Promise.race([prepared, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Stops clients (their crypto machines are closed with them) and aborts what they still have in flight, then
 * gives the server a moment to finish those requests before the test closes it. Never throws.
 */
export async function stopClients(clients: Iterable<MatrixClient>): Promise<void> {
  for (const c of clients) {
    try {
      c.stopClient();
      c.http.abort();
    } catch {
      // already stopped
    }
  }
  await new Promise((r) => setTimeout(r, 200));
}

/**
 * Takes a client off the network while keeping it (and its in-memory crypto store) alive: `stopClient()`
 * would close the OlmMachine for good, so instead its requests go to a closed port and the in-flight
 * long-poll is aborted. The sync loop falls back to its keep-alive polling until `reconnect`.
 */
export async function disconnect(client: MatrixClient): Promise<void> {
  setBaseUrl(client, 'http://127.0.0.1:9');
  client.http.abort();
  await until('the client to notice it is offline', () => {
    const state = client.getSyncState();
    return state === SyncState.Error || state === SyncState.Reconnecting ? true : undefined;
  });
}

/** Points a client at a (possibly restarted) server and makes it sync again at once. */
export async function reconnect(client: MatrixClient, baseUrl: string): Promise<void> {
  setBaseUrl(client, baseUrl);
  client.http.abort();
  client.retryImmediately();
  await until('the client to sync again', () => (client.getSyncState() === SyncState.Syncing ? true : undefined));
}

function setBaseUrl(client: MatrixClient, baseUrl: string): void {
  client.baseUrl = baseUrl;
  client.http.opts.baseUrl = baseUrl;
}

/** Creates a room with encryption on from the start and the given users invited. */
export async function createEncryptedRoom(client: MatrixClient, invite: string[]): Promise<string> {
  const { room_id: roomId } = await client.createRoom({
    invite,
    initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
  });
  return roomId;
}

/** Waits until the client's view of the room is encrypted and has exactly these users joined (among others). */
export async function waitForRoom(client: MatrixClient, roomId: string, joined: string[]): Promise<void> {
  await until(`${client.getUserId()} to see ${roomId} encrypted with ${joined.join(', ')} joined`, async () => {
    const room = client.getRoom(roomId);
    if (!room || room.getMyMembership() !== KnownMembership.Join) return undefined;
    if (!(await client.getCrypto()!.isEncryptionEnabledInRoom(roomId))) return undefined;
    return joined.every((u) => room.getMember(u)?.membership === KnownMembership.Join) ? true : undefined;
  });
}

/** Joins an invited room and waits until the client sees it as encrypted. */
export async function joinEncryptedRoom(client: MatrixClient, roomId: string): Promise<void> {
  await until(`${client.getUserId()} to be invited to ${roomId}`, () => (client.getRoom(roomId)?.getMyMembership() === KnownMembership.Invite ? true : undefined));
  await client.joinRoom(roomId);
  await waitForRoom(client, roomId, [client.getUserId()!]);
}

/** Waits until `client` knows exactly which devices `userId` has (as seen through /keys/query). */
export async function waitForDevices(client: MatrixClient, userId: string, present: string[], absent: string[] = []): Promise<void> {
  await until(`${client.getUserId()} to see ${userId} with devices [${present.join(', ')}] and without [${absent.join(', ')}]`, async () => {
    const devices = (await client.getCrypto()!.getUserDeviceInfo([userId], true)).get(userId);
    if (!devices) return undefined;
    return present.every((d) => devices.has(d)) && absent.every((d) => !devices.has(d)) ? true : undefined;
  });
}

/** Sends a text message; the caller has made sure the room is known to be encrypted. */
export async function sendText(client: MatrixClient, roomId: string, body: string): Promise<string> {
  const { event_id: eventId } = await client.sendTextMessage(roomId, body);
  return eventId;
}

function describeTimeline(client: MatrixClient, roomId: string): string {
  const events = client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? [];
  return events
    .filter((e) => e.isEncrypted())
    .map((e) => (e.isDecryptionFailure() ? `UTD(${e.decryptionFailureReason})` : `"${String(e.getContent().body)}"`))
    .join(', ');
}

/**
 * Waits until an event in the room's live timeline arrived encrypted (wire type m.room.encrypted) and the
 * client decrypted it to a message with this body. Events that failed to decrypt are retried by the SDK
 * itself when their keys arrive (late room key, key backup restore).
 */
export async function waitForDecrypted(client: MatrixClient, roomId: string, body: string, timeoutMs = 15_000): Promise<MatrixEvent> {
  try {
    return await until(
      `${client.getUserId()}/${client.getDeviceId()} to decrypt "${body}"`,
      () =>
        client
          .getRoom(roomId)
          ?.getLiveTimeline()
          .getEvents()
          .find((e) => e.isEncrypted() && !e.isDecryptionFailure() && e.getType() === 'm.room.message' && e.getClearContent()?.body === body),
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; encrypted events in the timeline: [${describeTimeline(client, roomId)}]`);
  }
}

/** The encrypted events of the room the client could not decrypt (yet). */
export function undecryptable(client: MatrixClient, roomId: string): MatrixEvent[] {
  return (client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? []).filter((e) => e.isDecryptionFailure());
}

/** Resolves with the SAS callbacks once the verifier can show the short authentication string. */
function sasShown(verifier: Verifier): Promise<ShowSasCallbacks> {
  return new Promise((resolve) => {
    verifier.once(VerifierEvent.ShowSas, resolve);
    const now = verifier.getShowSasCallbacks();
    if (now) resolve(now);
  });
}

/**
 * Runs an interactive SAS verification between two pending requests, as two users comparing emoji would:
 * the responder accepts, the initiator starts m.sas.v1, both sides check that they show the same
 * emoji and confirm. Resolves when both sides are done.
 */
export async function completeSas(initiator: VerificationRequest, responder: VerificationRequest): Promise<void> {
  await responder.accept();
  await until('the verification request to be ready', () => (initiator.phase === VerificationPhase.Ready ? true : undefined));
  const v1 = await initiator.startVerification('m.sas.v1');
  const v2 = await until('the other side to see the SAS start', () => responder.verifier);
  const shown = Promise.all([sasShown(v1), sasShown(v2)]);
  const done = Promise.all([v1.verify(), v2.verify()]);
  const [s1, s2] = await shown;
  if (JSON.stringify(s1.sas.emoji) !== JSON.stringify(s2.sas.emoji)) throw new Error('the two sides show different emoji');
  await Promise.all([s1.confirm(), s2.confirm()]);
  await done;
  await until('both sides to finish', () => (initiator.phase === VerificationPhase.Done && responder.phase === VerificationPhase.Done ? true : undefined));
}

/** The next verification request a client receives. */
export function nextVerificationRequest(client: MatrixClient): Promise<VerificationRequest> {
  return new Promise((resolve) => client.once(CryptoEvent.VerificationRequestReceived, resolve));
}
