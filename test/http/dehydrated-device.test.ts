import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const MSC3814 = '/_matrix/client/unstable/org.matrix.msc3814.v1';

describe.each(testDialects())('dehydrated devices (MSC3814) on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('stores a dehydrated device that receives to-device messages while its owner is offline', async () => {
    const none = await request(server.baseUrl, 'GET', `${MSC3814}/dehydrated_device`, { token: alice.accessToken });
    expect(none.status).toBe(404);

    const deviceId = 'DEHYDRATEDCURVEKEY';
    const put = await request(server.baseUrl, 'PUT', `${MSC3814}/dehydrated_device`, {
      token: alice.accessToken,
      body: {
        device_id: deviceId,
        device_data: { algorithm: 'org.matrix.msc3814.v1.olm', device_pickle: 'opaque' },
        device_keys: {
          user_id: alice.userId,
          device_id: deviceId,
          algorithms: ['m.olm.v1.curve25519-aes-sha2'],
          keys: { [`curve25519:${deviceId}`]: 'c', [`ed25519:${deviceId}`]: 'e' },
          signatures: {},
          dehydrated: true,
        },
        one_time_keys: { 'signed_curve25519:AAA': { key: 'otk', signatures: {} } },
      },
    });
    expect(put.status).toBe(200);
    expect(put.body.device_id).toBe(deviceId);

    // Others see its keys and can claim its one-time key, so they can share room keys with it.
    const query = await request(server.baseUrl, 'POST', '/_matrix/client/v3/keys/query', { token: bob.accessToken, body: { device_keys: { [alice.userId]: [] } } });
    expect(Object.keys(query.body.device_keys[alice.userId])).toContain(deviceId);
    const claim = await request(server.baseUrl, 'POST', '/_matrix/client/v3/keys/claim', {
      token: bob.accessToken,
      body: { one_time_keys: { [alice.userId]: { [deviceId]: 'signed_curve25519' } } },
    });
    expect(claim.body.one_time_keys[alice.userId][deviceId]).toEqual({ 'signed_curve25519:AAA': { key: 'otk', signatures: {} } });

    // It is not one of the devices the user manages.
    const devices = await request(server.baseUrl, 'GET', '/_matrix/client/v3/devices', { token: alice.accessToken });
    expect(devices.body.devices.map((d: { device_id: string }) => d.device_id)).not.toContain(deviceId);

    for (let i = 0; i < 3; i++) {
      const sent = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/sendToDevice/m.room_key_test/t${i}`, {
        token: bob.accessToken,
        body: { messages: { [alice.userId]: { [deviceId]: { n: i } } } },
      });
      expect(sent.status).toBe(200);
    }

    const got = await request(server.baseUrl, 'GET', `${MSC3814}/dehydrated_device`, { token: alice.accessToken });
    expect(got.body).toEqual({ device_id: deviceId, device_data: { algorithm: 'org.matrix.msc3814.v1.olm', device_pickle: 'opaque' } });

    const first = await request(server.baseUrl, 'POST', `${MSC3814}/dehydrated_device/${deviceId}/events`, { token: alice.accessToken, body: {} });
    expect(first.body.events.map((e: { content: { n: number } }) => e.content.n)).toEqual([0, 1, 2]);
    expect(first.body.events[0].sender).toBe(bob.userId);
    const again = await request(server.baseUrl, 'POST', `${MSC3814}/dehydrated_device/${deviceId}/events`, { token: alice.accessToken, body: {} });
    expect(again.body.events).toHaveLength(3);
    const end = await request(server.baseUrl, 'POST', `${MSC3814}/dehydrated_device/${deviceId}/events`, {
      token: alice.accessToken,
      body: { next_batch: first.body.next_batch },
    });
    expect(end.body.events).toEqual([]);

    const wrong = await request(server.baseUrl, 'POST', `${MSC3814}/dehydrated_device/OTHER/events`, { token: alice.accessToken, body: {} });
    expect(wrong.status).toBe(403);

    const del = await request(server.baseUrl, 'DELETE', `${MSC3814}/dehydrated_device`, { token: alice.accessToken });
    expect(del.body.device_id).toBe(deviceId);
    const after = await request(server.baseUrl, 'POST', '/_matrix/client/v3/keys/query', { token: bob.accessToken, body: { device_keys: { [alice.userId]: [] } } });
    expect(Object.keys(after.body.device_keys[alice.userId])).not.toContain(deviceId);
  });
});
