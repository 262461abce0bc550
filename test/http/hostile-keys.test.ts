import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { loginDevice, registerUser, type TestUser } from '../helpers/users.js';

const V3 = '/_matrix/client/v3';
const enc = encodeURIComponent;
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
    const room = await request(server.baseUrl, 'POST', `${V3}/createRoom`, { token: alice.accessToken, body: { preset: 'public_chat' } });
    roomId = room.body.room_id;
    expect((await request(server.baseUrl, 'POST', `${V3}/join/${enc(roomId)}`, { token: mallory.accessToken, body: {} })).status).toBe(200);
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
  it('devices named __proto__ and constructor have their keys uploaded, queried and claimed', async () => {
    const devices = [await loginDevice(server.baseUrl, mallory, '__proto__'), await loginDevice(server.baseUrl, mallory, 'constructor')];
    for (const d of devices) {
      const keys = `{"device_keys":{"user_id":"${d.userId}","device_id":"${d.deviceId}","algorithms":["m.megolm.v1.aes-sha2"],"keys":{"ed25519:${d.deviceId}":"k-${d.deviceId}"},"signatures":{}},` +
        `"one_time_keys":{"constructor:A":{"key":"c","signatures":{}},"toString:B":{"key":"t","signatures":{}},"signed_curve25519:C":{"key":"s","signatures":{}}}}`;
      const up = await send(d, 'POST', `${V3}/keys/upload`, keys);
      expect(up.status).toBe(200);
      expect(up.body.one_time_key_counts).toMatchObject({ constructor: 1, toString: 1, signed_curve25519: 1 });
    }
    const query = await call(alice, 'POST', `${V3}/keys/query`, { device_keys: { [mallory.userId]: [] } });
    expect(query.status).toBe(200);
    expect(Object.keys(query.body.device_keys[mallory.userId]).sort()).toEqual(expect.arrayContaining(['__proto__', 'constructor']));
    expect(query.body.device_keys[mallory.userId].__proto__.keys).toEqual({ 'ed25519:__proto__': 'k-__proto__' });

    const claim = await call(alice, 'POST', `${V3}/keys/claim`, { one_time_keys: { [mallory.userId]: { constructor: 'constructor', toString: 'toString' } } });
    expect(claim.status).toBe(200);
    expect(claim.body.one_time_keys[mallory.userId].constructor).toEqual({ 'constructor:A': { key: 'c', signatures: {} } });
    expect(Object.keys(claim.body.one_time_keys[mallory.userId])).toEqual(['constructor']);
    await othersStillServed();
  });

  it.each([
    ['keys/query', 'POST', '/keys/query', '{"device_keys":{"constructor":[],"toString":["x"]}}'],
    ['keys/claim', 'POST', '/keys/claim', '{"one_time_keys":{"constructor":{"d":"signed_curve25519"}}}'],
    ['sendToDevice', 'PUT', '/sendToDevice/m.test/hostile1', '{"messages":{"constructor":{"*":{"a":1}},"hasOwnProperty":{"d":{}}}}'],
  ])('%s refuses keys that are not user ids', async (_name, method, path, json) => {
    const res = await send(mallory, method, V3 + path, json);
    expect(res.status).toBe(400);
    expect(res.body.errcode).toBe('M_INVALID_PARAM');
    await othersStillServed();
  });

  it('tags named like prototype members are stored, listed and removed', async () => {
    const tags = `${V3}/user/${enc(alice.userId)}/rooms/${enc(roomId)}/tags`;
    for (const [i, tag] of PROTO_KEYS.entries()) expect((await call(alice, 'PUT', `${tags}/${tag}`, { order: i / 10 })).status).toBe(200);
    let got = await call(alice, 'GET', tags);
    expect(got.status).toBe(200);
    expect(Object.keys(got.body.tags).sort()).toEqual([...PROTO_KEYS].sort());
    expect(got.body.tags.__proto__).toEqual({ order: 0 });
    expect((await call(alice, 'DELETE', `${tags}/constructor`)).status).toBe(200);
    expect((await call(alice, 'DELETE', `${tags}/valueOf`)).status).toBe(200);
    got = await call(alice, 'GET', tags);
    expect(Object.keys(got.body.tags).sort()).toEqual(PROTO_KEYS.filter((k) => k !== 'constructor').sort());
    await othersStillServed();
  });

  it('push rules: prototype-named kinds are refused, a __proto__ tweak is data and does not make every match a highlight', async () => {
    for (const kind of ['__proto__', 'constructor', 'toString']) {
      const res = await call(mallory, 'PUT', `${V3}/pushrules/global/${kind}/r1`, { actions: ['notify'] });
      expect(res.status).toBe(400);
    }
    const path = `${V3}/pushrules/global/override/constructor`;
    const rule = '{"actions":["notify",{"set_tweak":"__proto__","value":{"highlight":true}}],"conditions":[{"kind":"event_match","key":"content.body","pattern":"proto-ping"}]}';
    expect((await send(mallory, 'PUT', path, rule)).status).toBe(200);
    const got = await call(mallory, 'GET', path);
    expect(got.status).toBe(200);
    expect(got.body.rule_id).toBe('constructor');
    expect(got.body.actions[1].set_tweak).toBe('__proto__');
    const txn = `p${Math.random().toString(36).slice(2)}`;
    const sent = await call(alice, 'PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/${txn}`, { msgtype: 'm.text', body: 'proto-ping' });
    expect(sent.status).toBe(200);
    await server.hs.services.push.idle();
    const notifications = await call(mallory, 'GET', `${V3}/notifications`);
    expect(notifications.status).toBe(200);
    const mine = notifications.body.notifications.find((n: { event: { event_id: string } }) => n.event.event_id === sent.body.event_id);
    expect(mine?.actions).toEqual(['notify', { set_tweak: '__proto__', value: { highlight: true } }]);
    const sync = await call(mallory, 'GET', `${V3}/sync?timeout=0`);
    expect(sync.body.rooms.join[roomId].unread_notifications.highlight_count).toBe(0);
    expect((await call(mallory, 'DELETE', path)).status).toBe(200);
    await othersStillServed();
  });

  it('key backups of rooms and sessions named like prototype members are listed', async () => {
    const made = await call(mallory, 'POST', `${V3}/room_keys/version`, { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: 'pk' } });
    expect(made.status).toBe(200);
    const v = made.body.version;
    const key = { first_message_index: 0, forwarded_count: 0, is_verified: false, session_data: { ciphertext: 'c' } };
    for (const room of ['__proto__', 'constructor']) {
      for (const session of ['__proto__', 'toString']) {
        expect((await call(mallory, 'PUT', `${V3}/room_keys/keys/${room}/${session}?version=${v}`, key)).status).toBe(200);
      }
    }
    const all = await call(mallory, 'GET', `${V3}/room_keys/keys?version=${v}`);
    expect(all.status).toBe(200);
    expect(Object.keys(all.body.rooms).sort()).toEqual(['__proto__', 'constructor']);
    expect(Object.keys(all.body.rooms.__proto__.sessions).sort()).toEqual(['__proto__', 'toString']);
    const one = await call(mallory, 'GET', `${V3}/room_keys/keys/constructor?version=${v}`);
    expect(Object.keys(one.body.sessions).sort()).toEqual(['__proto__', 'toString']);
    await othersStillServed();
  });

  it('thread notification counts for a thread named __proto__ stay in that room', async () => {
    const filter = await call(mallory, 'POST', `${V3}/user/${enc(mallory.userId)}/filter`, { room: { timeline: { unread_thread_notifications: true } } });
    expect(filter.status).toBe(200);
    for (const thread of ['__proto__', 'constructor']) {
      const txn = `th${Math.random().toString(36).slice(2)}`;
      const content = { msgtype: 'm.text', body: 'in a thread', 'm.relates_to': { rel_type: 'm.thread', event_id: thread } };
      const sent = await call(alice, 'PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/${txn}`, content);
      expect([200, 400]).toContain(sent.status);
    }
    await server.hs.services.push.idle();
    const sync = await call(mallory, 'GET', `${V3}/sync?timeout=0&filter=${filter.body.filter_id}`);
    expect(sync.status).toBe(200);
    const threads = sync.body.rooms.join[roomId].unread_thread_notifications ?? {};
    for (const [, counts] of Object.entries(threads)) expect((counts as { notification_count: number }).notification_count).toBeGreaterThan(0);
    await othersStillServed();
  });

  it('values that are objects with their own toString or valueOf get a spec error, not a 500', async () => {
    const base = `${V3}/rooms/${enc(roomId)}/state`;
    for (const json of ['{"alias":{"toString":1}}', '{"alt_aliases":[{"valueOf":1,"toString":1}]}']) {
      const res = await send(alice, 'PUT', `${base}/m.room.canonical_alias/`, json);
      expect(res.status).toBe(400);
      expect(res.body.errcode).toBe('M_INVALID_PARAM');
    }
    const member = await send(alice, 'PUT', `${base}/m.room.member/${enc(alice.userId)}`, '{"membership":{"toString":1}}');
    expect(member.status).toBeGreaterThanOrEqual(400);
    expect(member.status).toBeLessThan(500);
    await othersStillServed();
  });

  it.each(PROTO_KEYS)('third-party protocol %s is unknown', async (protocol) => {
    const res = await call(mallory, 'GET', `${V3}/thirdparty/protocol/${protocol}`);
    expect(res.status).toBe(404);
    expect(res.body.errcode).toBe('M_NOT_FOUND');
  });

  // These paths were already safe (Maps, validated keys); the tests keep them so.
  describe('paths that were already safe', () => {
    it('event content with keys named __proto__ and constructor round-trips unchanged', async () => {
      const content = '{"msgtype":"m.text","body":"b","x":{"__proto__":{"polluted":1},"constructor":{"prototype":2},"toString":3}}';
      const sent = await send(alice, 'PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/c${Math.random().toString(36).slice(2)}`, content);
      expect(sent.status).toBe(200);
      const got = await call(mallory, 'GET', `${V3}/rooms/${enc(roomId)}/event/${enc(sent.body.event_id)}`);
      expect(got.status).toBe(200);
      expect(JSON.stringify(got.body.content)).toBe(content);
      await othersStillServed();
    });

    it('to-device messages reach a device named constructor, and not one named toString that does not exist', async () => {
      const target = await loginDevice(server.baseUrl, alice, 'constructor');
      const first = await call(target, 'GET', `${V3}/sync?timeout=0`);
      const json = `{"messages":{"${alice.userId}":{"constructor":{"n":1},"toString":{"n":2},"hasOwnProperty":{"n":3}}}}`;
      expect((await send(mallory, 'PUT', `${V3}/sendToDevice/m.test/hostile2`, json)).status).toBe(200);
      const sync = await call(target, 'GET', `${V3}/sync?timeout=0&since=${enc(first.body.next_batch)}`);
      expect(sync.status).toBe(200);
      expect(sync.body.to_device.events).toEqual([{ type: 'm.test', sender: mallory.userId, content: { n: 1 } }]);
      await othersStillServed();
    });

    it.each(PROTO_KEYS)('account data of type %s is stored and read back as data', async (type) => {
      const global = `${V3}/user/${enc(mallory.userId)}/account_data/${type}`;
      expect((await send(mallory, 'PUT', global, `{"k":"${type}","nested":{"${type}":{"v":1}}}`)).status).toBe(200);
      const got = await call(mallory, 'GET', global);
      expect(got.status).toBe(200);
      expect(got.body.k).toBe(type);
      expect(Object.hasOwn(got.body.nested, type)).toBe(true);

      const inRoom = `${V3}/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/${type}`;
      expect((await send(alice, 'PUT', inRoom, `{"k":"room-${type}"}`)).status).toBe(200);
      expect((await call(alice, 'GET', inRoom)).body.k).toBe(`room-${type}`);

      const sync = await call(mallory, 'GET', `${V3}/sync?timeout=0`);
      expect(sync.status).toBe(200);
      expect(sync.body.account_data.events.find((e: { type: string }) => e.type === type)?.content.k).toBe(type);
      const roomSync = await call(alice, 'GET', `${V3}/sync?timeout=0`);
      expect(roomSync.body.rooms.join[roomId].account_data.events.find((e: { type: string }) => e.type === type)?.content.k).toBe(`room-${type}`);
      await othersStillServed();
    });

    it('receipts of a prototype-named type or event are refused', async () => {
      for (const type of ['constructor', '__proto__', 'toString']) {
        const res = await call(alice, 'POST', `${V3}/rooms/${enc(roomId)}/receipt/${type}/${enc('$x')}`, {});
        expect(res.status).toBe(400);
      }
      const res = await call(alice, 'POST', `${V3}/rooms/${enc(roomId)}/receipt/m.read/constructor`, {});
      expect([400, 404]).toContain(res.status);
      await othersStillServed();
    });

    it('filters with prototype-named event types are stored and used', async () => {
      const filter = '{"room":{"timeline":{"types":["constructor","__proto__"],"limit":5}},"account_data":{"types":["toString"]}}';
      const made = await send(alice, 'POST', `${V3}/user/${enc(alice.userId)}/filter`, filter);
      expect(made.status).toBe(200);
      const got = await call(alice, 'GET', `${V3}/user/${enc(alice.userId)}/filter/${made.body.filter_id}`);
      expect(got.body.room.timeline.types).toEqual(['constructor', '__proto__']);
      expect((await call(alice, 'GET', `${V3}/user/${enc(alice.userId)}/filter/constructor`)).status).toBeGreaterThanOrEqual(400);
      const sync = await call(alice, 'GET', `${V3}/sync?timeout=0&filter=${made.body.filter_id}`);
      expect(sync.status).toBe(200);
      await othersStillServed();
    });

    it('state events with prototype-named types and state keys are stored and read back', async () => {
      const base = `${V3}/rooms/${enc(roomId)}/state`;
      for (const key of PROTO_KEYS) {
        expect((await call(alice, 'PUT', `${base}/m.room.topic/${key}`, { topic: `t-${key}` })).status).toBe(200);
        expect((await call(alice, 'PUT', `${base}/${key}/`, { v: key })).status).toBe(200);
      }
      for (const key of PROTO_KEYS) {
        const got = await call(alice, 'GET', `${base}/m.room.topic/${key}`);
        expect(got.status).toBe(200);
        expect(got.body.topic).toBe(`t-${key}`);
        expect((await call(alice, 'GET', `${base}/${key}/`)).body.v).toBe(key);
      }
      expect((await call(alice, 'PUT', `${base}/m.room.member/constructor`, { membership: 'join' })).status).toBeGreaterThanOrEqual(400);
      const all = await call(alice, 'GET', base);
      expect(all.status).toBe(200);
      expect(all.body.filter((e: { type: string }) => e.type === 'm.room.topic').map((e: { state_key: string }) => e.state_key)).toEqual(expect.arrayContaining(PROTO_KEYS));
      const members = await call(alice, 'GET', `${V3}/rooms/${enc(roomId)}/joined_members`);
      expect(members.status).toBe(200);
      await othersStillServed();
    });
  });
});
