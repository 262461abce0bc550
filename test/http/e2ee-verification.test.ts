import type { AuthDict, MatrixClient } from 'matrix-js-sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  completeSas,
  createEncryptedRoom,
  joinEncryptedRoom,
  loginDevice,
  nextVerificationRequest,
  startCryptoClient,
  specViolations,
  stopClients,
  until,
  waitForDevices,
  waitForRoom,
} from '../helpers/crypto.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// Cross-signing and interactive (SAS) verification through Skjól with matrix-js-sdk's Rust crypto: the
// verification runs over to-device messages (own devices) or room events (another user), and the
// signatures the clients upload are what other users' clients read back from /keys/query.

const password = (user: TestUser): AuthDict => ({ type: 'm.login.password', identifier: { type: 'm.id.user', user: user.userId }, password: user.password });

describe.each(testDialects())('cross-signing and SAS verification with matrix-js-sdk Rust crypto on %s', (dialect) => {
  let server: TestServer;
  const clients: MatrixClient[] = [];
  const start = async (user: TestUser) => {
    const client = await startCryptoClient(server.baseUrl, user);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
  });
  afterAll(async () => {
    await stopClients(clients);
    await server?.close();
  });
  afterEach(() => {
    expect(specViolations).toEqual([]);
  });

  it('bootstraps cross-signing, verifies a second device by SAS, and others see it signed by its owner', async () => {
    const dave = await registerUser(server.baseUrl, 'dave');
    const dave2 = await loginDevice(server.baseUrl, dave);
    const eve = await registerUser(server.baseUrl, 'eve');
    const d1 = await start(dave);
    const d2 = await start(dave2);
    const e = await start(eve);
    // Eve shares a room with dave, so her client tracks his devices.
    const roomId = await createEncryptedRoom(e, [dave.userId]);
    await joinEncryptedRoom(d1, roomId);
    await waitForRoom(e, roomId, [dave.userId]);

    // First upload of cross-signing keys: no re-authentication needed (the callback is offered anyway).
    await d1.getCrypto()!.bootstrapCrossSigning({ authUploadDeviceSigningKeys: async (makeRequest) => void (await makeRequest(password(dave))) });
    expect(await d1.getCrypto()!.isCrossSigningReady()).toBe(true);
    const query = await request(server.baseUrl, 'POST', '/_matrix/client/v3/keys/query', { token: eve.accessToken, body: { device_keys: { [dave.userId]: [] } } });
    expect(query.body.master_keys[dave.userId].usage).toEqual(['master']);
    expect(query.body.self_signing_keys[dave.userId].usage).toEqual(['self_signing']);
    expect(query.body.user_signing_keys[dave.userId]).toBeUndefined();

    // Dave's second device learns of the new identity and asks the first to verify it.
    await waitForDevices(d2, dave.userId, [dave.deviceId]);
    await until('the second device to see the cross-signing keys', async () => ((await d2.getCrypto()!.userHasCrossSigningKeys(dave.userId, true)) ? true : undefined));
    const received = nextVerificationRequest(d1);
    const fromD2 = await d2.getCrypto()!.requestOwnUserVerification();
    const atD1 = await received;
    expect(atD1.otherDeviceId).toBe(dave2.deviceId);
    await completeSas(fromD2, atD1);

    // The first device held the self-signing key and signed the second one; the second now trusts dave's identity.
    await until('dave2 to be cross-signed, as dave1 sees it', async () =>
      (await d1.getCrypto()!.getDeviceVerificationStatus(dave.userId, dave2.deviceId))?.crossSigningVerified ? true : undefined,
    );
    await until('the second device to trust its own identity', async () =>
      (await d2.getCrypto()!.getUserVerificationStatus(dave.userId)).isCrossSigningVerified() ? true : undefined,
    );

    // Eve re-fetches dave's keys (device_lists.changed) and sees the new device signed by its owner.
    await until('eve to see dave2 signed by its owner', async () =>
      (await e.getCrypto()!.getDeviceVerificationStatus(dave.userId, dave2.deviceId))?.signedByOwner ? true : undefined,
    );
    const atEve = (await e.getCrypto()!.getDeviceVerificationStatus(dave.userId, dave2.deviceId))!;
    expect(atEve.crossSigningVerified).toBe(false); // eve has not verified dave himself (yet)
    expect((await e.getCrypto()!.getUserVerificationStatus(dave.userId)).isCrossSigningVerified()).toBe(false);

    // Eve sets up cross-signing and verifies dave in their room; her user-signing key signs his master key.
    await e.getCrypto()!.bootstrapCrossSigning({ authUploadDeviceSigningKeys: async (makeRequest) => void (await makeRequest(password(eve))) });
    await waitForDevices(d1, eve.userId, [eve.deviceId]);
    await until("dave to see eve's cross-signing keys", async () => ((await d1.getCrypto()!.userHasCrossSigningKeys(eve.userId, true)) ? true : undefined));
    const daveGetsRequest = nextVerificationRequest(d1);
    const fromEve = await e.getCrypto()!.requestVerificationDM(dave.userId, roomId);
    await completeSas(fromEve, await daveGetsRequest);
    await until('eve to trust dave', async () => ((await e.getCrypto()!.getUserVerificationStatus(dave.userId)).isCrossSigningVerified() ? true : undefined));
    expect((await e.getCrypto()!.getDeviceVerificationStatus(dave.userId, dave2.deviceId))?.crossSigningVerified).toBe(true);

    // The signature of eve's user-signing key on dave's master key is for eve's eyes only.
    const master = (token: string) =>
      request(server.baseUrl, 'POST', '/_matrix/client/v3/keys/query', { token, body: { device_keys: { [dave.userId]: [] } } }).then(
        (r) => r.body.master_keys[dave.userId].signatures as Record<string, unknown>,
      );
    expect(Object.keys(await master(eve.accessToken))).toContain(eve.userId);
    expect(Object.keys(await master(dave.accessToken))).not.toContain(eve.userId);

    // Replacing dave's keys needs the password: without auth the server answers 401 with the flows.
    const challenges: number[] = [];
    await d1.getCrypto()!.bootstrapCrossSigning({
      setupNewCrossSigning: true,
      authUploadDeviceSigningKeys: async (makeRequest) => {
        try {
          await makeRequest(null);
        } catch (err) {
          const e = err as { httpStatus?: number; data?: { flows?: Array<{ stages: string[] }> } };
          challenges.push(e.httpStatus ?? 0);
          expect(e.data?.flows).toContainEqual({ stages: ['m.login.password'] });
          await makeRequest(password(dave));
        }
      },
    });
    expect(challenges).toEqual([401]);
    const replaced = await request(server.baseUrl, 'POST', '/_matrix/client/v3/keys/query', { token: eve.accessToken, body: { device_keys: { [dave.userId]: [] } } });
    expect(replaced.body.master_keys[dave.userId].keys).not.toEqual(query.body.master_keys[dave.userId].keys);

    // Eve's client hears of the new identity (device_lists.changed) and no longer trusts dave as verified.
    await until('eve to see that dave changed his identity', async () => {
      const status = await e.getCrypto()!.getUserVerificationStatus(dave.userId);
      return status.wasCrossSigningVerified() && !status.isCrossSigningVerified() ? true : undefined;
    });
  });
});
