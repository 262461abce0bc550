import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/homeserver.js';
import { testDialects } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import type { TestUser } from '../helpers/users.js';
import { enc, eventually, startPair, sync, type Fleet } from './helpers.js';

// What another server sends, keyed by names of Object.prototype members, stays data:
//   A localhost:<port>  — alice, whose server sends the hostile EDUs and queries
//   B 127.0.0.1:<port>  — bob, who owns the room
const nativeEntries = Object.entries;

describe.each(testDialects())('keys named like prototype members from another server, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat', room_alias_name: 'hostile' } });
    roomId = created.body.room_id;
    const joined = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(`#hostile:${B.serverName}`)}`, { token: alice.accessToken, body: {} });
    expect(joined.status).toBe(200);
    await eventually(async () => {
      const res = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`, { token: bob.accessToken });
      return res.body?.joined?.[alice.userId] !== undefined;
    }, 'alice joined on B');
  }, 90_000);
  afterAll(async () => {
    await fleet?.close();
  });
  // The servers share this process: a polluted prototype would show here too.
  afterEach(() => {
    expect(Object.entries).toBe(nativeEntries);
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  it('a read receipt on an event named __proto__ is kept as data, and bob still syncs and sends', async () => {
    const since = (await sync(B, bob)).next_batch;
    // JSON text, so `__proto__` and `constructor` travel as own keys, as a hostile server sends them.
    const edus = JSON.parse(
      `[{"edu_type":"m.receipt","content":{"${roomId}":{"m.read":{"${alice.userId}":{"event_ids":["__proto__"],"data":{"ts":1}}}}}},` +
        `{"edu_type":"m.direct_to_device","content":{"sender":"${alice.userId}","type":"m.test","message_id":"hostile-1","messages":{"${bob.userId}":{"constructor":{"n":1},"${bob.deviceId}":{"n":2}},"constructor":{"x":{}}}}}]`,
    );
    await A.hs.services.federation.client.request({
      destination: B.serverName,
      method: 'PUT',
      path: '/_matrix/federation/v1/send/hostile-1',
      body: { origin: A.serverName, origin_server_ts: Date.now(), pdus: [], edus },
    });
    const after = await sync(B, bob, since);
    const receipts = (after.rooms?.join?.[roomId]?.ephemeral?.events ?? []).filter((e: { type: string }) => e.type === 'm.receipt');
    expect(receipts.some((e: { content: Record<string, any> }) => Object.hasOwn(e.content, '__proto__') && e.content.__proto__['m.read'][alice.userId] !== undefined)).toBe(true);
    expect(after.to_device.events).toEqual([{ type: 'm.test', sender: alice.userId, content: { n: 2 } }]);
    const sent = await request(B.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/h1`, { token: bob.accessToken, body: { msgtype: 'm.text', body: 'fine' } });
    expect(sent.status).toBe(200);
  });

  it('federation key queries and claims for prototype-named users and devices answer with data only (already safe: local users only)', async () => {
    const client = A.hs.services.federation.client;
    const query = await client.request<Record<string, any>>({
      destination: B.serverName,
      method: 'POST',
      path: '/_matrix/federation/v1/user/keys/query',
      body: JSON.parse(`{"device_keys":{"constructor":[],"__proto__":[],"${bob.userId}":["constructor","toString"]}}`),
    });
    expect(Object.keys(query.device_keys)).toEqual([bob.userId]);
    expect(Object.keys(query.device_keys[bob.userId])).toEqual([]);
    const claim = await client.request<Record<string, any>>({
      destination: B.serverName,
      method: 'POST',
      path: '/_matrix/federation/v1/user/keys/claim',
      body: JSON.parse(`{"one_time_keys":{"constructor":{"d":"x"},"${bob.userId}":{"toString":"signed_curve25519","constructor":"constructor"}}}`),
    });
    expect(claim.one_time_keys).toEqual({});
    expect((await sync(B, bob)).next_batch).toBeTruthy();
  });
});
