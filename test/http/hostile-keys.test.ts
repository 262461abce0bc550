import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

const V3 = '/_matrix/client/v3';
/** Keys that name something on Object.prototype: as data they must stay data. */
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString'];
const nativeEntries = Object.entries;

describe.each(testDialects())('keys named like prototype members on %s', (dialect) => {
  let server: TestServer;
  let mallory: TestUser;
  let alice: TestUser;
  let roomId: string;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    mallory = await registerUser(server.baseUrl, 'mallory');
    alice = await registerUser(server.baseUrl, 'alice');
    const room = await request(server.baseUrl, 'POST', `${V3}/createRoom`, { token: alice.accessToken, body: {} });
    roomId = room.body.room_id;
  });
  afterAll(async () => {
    await server?.close();
  });
  // The server shares this process: a polluted prototype would show here too.
  afterEach(() => {
    expect(Object.entries).toBe(nativeEntries);
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  /** A body as raw JSON text, so `__proto__` arrives as an own key exactly as an attacker sends it. */
  const send = (user: TestUser, method: string, path: string, json: string, skipSpecCheck = false) =>
    request(server.baseUrl, method, path, { token: user.accessToken, rawBody: json, headers: { 'content-type': 'application/json' }, skipSpecCheck });
  const call = (user: TestUser, method: string, path: string, body?: unknown) => request(server.baseUrl, method, path, { token: user.accessToken, body });

  /** Another user's everyday requests still work. */
  async function othersStillServed(): Promise<void> {
    const txn = `t${Math.random().toString(36).slice(2)}`;
    const sent = await call(alice, 'PUT', `${V3}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`, { msgtype: 'm.text', body: 'still here' });
    expect(sent.status).toBe(200);
    const sync = await call(alice, 'GET', `${V3}/sync?timeout=0`);
    expect(sync.status).toBe(200);
    const query = await call(alice, 'POST', `${V3}/keys/query`, { device_keys: { [mallory.userId]: [] } });
    expect(query.status).toBe(200);
  }

  it('keys/signatures/upload reports prototype-named users as failures and harms no one', async () => {
    const res = await send(mallory, 'POST', `${V3}/keys/signatures/upload`, '{"constructor":{"entries":{"key":"x"}},"__proto__":{"polluted":{"key":"x"}},"toString":{"k":{}}}');
    expect(res.status).toBe(200);
    // Validation drops a `__proto__` key; the others are unknown users like any other.
    expect(Object.keys(res.body.failures).sort()).toEqual(['constructor', 'toString']);
    expect(res.body.failures.constructor.entries.errcode).toBe('M_NOT_FOUND');
    await othersStillServed();
  });

  it.each(PROTO_KEYS)('profile field %s is refused, not stored nor read', async (field) => {
    const path = `${V3}/profile/${encodeURIComponent(mallory.userId)}/${field}`;
    const put = await send(mallory, 'PUT', path, JSON.stringify({ [field]: 'x', displayname: 'x' }));
    expect(put.status).toBe(400);
    expect(put.body.errcode).toBe('M_UNRECOGNIZED');
    const got = await call(mallory, 'GET', path);
    expect(got.status).toBe(404);
    expect(got.body.errcode).toBe('M_NOT_FOUND');
    const profile = await call(mallory, 'GET', `${V3}/profile/${encodeURIComponent(mallory.userId)}`);
    expect(profile.body).toEqual({ displayname: 'mallory' });
    await othersStillServed();
  });
});
