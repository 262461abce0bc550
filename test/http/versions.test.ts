import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request, type HttpResult } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// Clients decide what to offer from /versions (Element hides cross-signing without its flag): each advertised
// unstable feature must be backed by an endpoint that answers, not 404 M_UNRECOGNIZED.
describe.each(testDialects())('/versions on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let roomId: string;
  let eventId: string;
  beforeAll(async () => {
    server = await startHomeserver({ dialect, config: { login_via_existing_session: { enabled: true } } });
    alice = await registerUser(server.baseUrl, 'alice');
    roomId = (await call('POST', '/_matrix/client/v3/createRoom', {})).body.room_id;
    eventId = (await call('PUT', `/_matrix/client/v3/rooms/${roomId}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hi' })).body.event_id;
  });
  afterAll(async () => {
    await server?.close();
  });

  function call(method: string, path: string, body?: unknown): Promise<HttpResult> {
    return request(server.baseUrl, method, path, { token: alice.accessToken, body });
  }

  it('advertises cross-signing as Synapse, Dendrite and Conduit do', async () => {
    const res = await request(server.baseUrl, 'GET', '/_matrix/client/versions');
    expect(res.status).toBe(200);
    expect(res.body.unstable_features['org.matrix.e2e_cross_signing']).toBe(true);
    expect(res.body.versions).toEqual(expect.arrayContaining(['r0.6.1', 'v1.1', 'v1.11']));
  });

  it('backs every advertised unstable feature with an endpoint that answers', async () => {
    const r = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;
    const e = encodeURIComponent(eventId);
    const probes: Record<string, () => Promise<HttpResult>> = {
      'org.matrix.e2e_cross_signing': () => call('POST', '/_matrix/client/v3/keys/query', { device_keys: { [alice.userId]: [] } }),
      'org.matrix.msc2285.stable': () => call('POST', `${r}/receipt/m.read.private/${e}`, {}),
      'org.matrix.msc3827.stable': () => call('POST', '/_matrix/client/v3/publicRooms', { filter: { room_types: [null] } }),
      'org.matrix.msc3440.stable': () => call('GET', `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/threads`),
      'org.matrix.msc3771': () => call('POST', `${r}/receipt/m.read/${e}`, { thread_id: 'main' }),
      'fi.mau.msc2659.stable': () => call('POST', '/_matrix/client/v1/appservice/nosuch/ping', {}),
      'org.matrix.msc3882': () => call('POST', '/_matrix/client/v1/login/get_token', {}),
      'org.matrix.msc3981': () => call('GET', `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/relations/${e}?recurse=true`),
      'org.matrix.msc3814': () => call('GET', '/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device'),
      'org.matrix.msc4151': () => call('POST', `${r}/report`, { reason: 'test' }),
      'org.matrix.simplified_msc3575': () =>
        call('POST', '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync', { lists: { all: { ranges: [[0, 9]], timeline_limit: 1, required_state: [] } } }),
    };
    const { unstable_features: features } = (await request(server.baseUrl, 'GET', '/_matrix/client/versions')).body;
    const advertised = Object.keys(features).filter((name) => features[name] === true);
    expect(advertised.sort()).toEqual(Object.keys(probes).sort());
    for (const name of advertised) {
      const res = await probes[name]!();
      expect({ name, unrecognized: res.body?.errcode === 'M_UNRECOGNIZED', serverError: res.status >= 500 }).toEqual({ name, unrecognized: false, serverError: false });
    }
    expect((await call('POST', '/_matrix/client/v3/keys/query', { device_keys: { [alice.userId]: [] } })).body.master_keys).toBeDefined();
  });

  it('does not advertise login with an existing session when POST /login/get_token is off', async () => {
    const plain = await startHomeserver({ dialect });
    try {
      const res = await request(plain.baseUrl, 'GET', '/_matrix/client/versions');
      expect(res.body.unstable_features['org.matrix.msc3882']).toBe(false);
    } finally {
      await plain.close();
    }
  });
});
