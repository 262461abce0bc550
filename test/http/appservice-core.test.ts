import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// A real application service on loopback: it records what the homeserver sends and answers user and
// alias queries by creating the user / alias through the Client-Server API with its as_token.

interface Recorded {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}

const AS_TOKEN = 'as-token-core';
const HS_TOKEN = 'hs-token-core';

class FakeAppservice {
  readonly requests: Recorded[] = [];
  pingMode: 'ok' | 'teapot' | 'hang' = 'ok';
  hsUrl = '';
  private server: Server | undefined;
  private readonly hanging: ServerResponse[] = [];

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private hs(method: string, path: string, body?: unknown) {
    return request(this.hsUrl, method, path, { token: AS_TOKEN, body });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    this.requests.push({ method: req.method!, path, authorization: req.headers.authorization, body: text ? JSON.parse(text) : undefined });
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${HS_TOKEN}`) return reply(403, { errcode: 'M_FORBIDDEN' });

    const user = /^\/_matrix\/app\/v1\/users\/(@[^:]+):localhost$/.exec(path);
    if (req.method === 'GET' && user) {
      if (!user[1]!.startsWith('@bridge_ondemand')) return reply(404, { errcode: 'M_NOT_FOUND' });
      const r = await this.hs('POST', '/_matrix/client/v3/register', { type: 'm.login.application_service', username: user[1]!.slice(1), inhibit_login: true });
      return reply(r.status === 200 ? 200 : 404, {});
    }
    const alias = /^\/_matrix\/app\/v1\/rooms\/#([^:]+):localhost$/.exec(path);
    if (req.method === 'GET' && alias) {
      if (!alias[1]!.startsWith('bridge_lazy')) return reply(404, { errcode: 'M_NOT_FOUND' });
      const r = await this.hs('POST', '/_matrix/client/v3/createRoom', { room_alias_name: alias[1], preset: 'public_chat' });
      return reply(r.status === 200 ? 200 : 404, {});
    }
    if (req.method === 'POST' && path === '/_matrix/app/v1/ping') {
      if (this.pingMode === 'hang') {
        this.hanging.push(res);
        return;
      }
      if (this.pingMode === 'teapot') {
        res.writeHead(418, { 'content-type': 'text/plain' });
        res.end('short and stout');
        return;
      }
      return reply(200, {});
    }
    // Transactions and anything else the homeserver pushes.
    reply(200, {});
  }
}

const registrationYaml = (o: { id: string; url: string | null; as: string; hs: string; sender: string; users?: string; aliases?: string }) => `
id: ${o.id}
url: ${o.url === null ? 'null' : JSON.stringify(o.url)}
as_token: ${o.as}
hs_token: ${o.hs}
sender_localpart: ${o.sender}
namespaces:
  users:
${o.users ? `    - exclusive: true\n      regex: "${o.users}"` : '    []'}
  aliases:
${o.aliases ? `    - exclusive: true\n      regex: "${o.aliases}"` : '    []'}
rate_limited: false
org.matrix.msc3202: true
io.element.msc4190: true
`.replace(/users:\n {4}\[\]/, 'users: []').replace(/aliases:\n {4}\[\]/, 'aliases: []');

describe('application service registration at start-up', () => {
  it('refuses a bad registration file, naming the file and the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skjol-as-bad-'));
    try {
      const file = join(dir, 'broken.yaml');
      writeFileSync(file, 'id: broken\nurl: null\nhs_token: x\nsender_localpart: bot\nnamespaces: {}\n');
      await expect(startHomeserver({ config: { app_service_config_files: [file] } })).rejects.toThrow(
        new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: field 'as_token'`),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('application service rate limits', () => {
  it('exempts services registered with rate_limited: false', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'skjol-as-rl-'));
    const file = join(dir, 'reg.yaml');
    writeFileSync(file, registrationYaml({ id: 'fast', url: null, as: 'as-fast', hs: 'hs-fast', sender: 'fastbot', users: '@fast_.*:localhost' }));
    const server = await startHomeserver({
      config: { app_service_config_files: [file], rc_enabled: true, rc_message: { per_second: 0.01, burst_count: 2 }, rc_registration: { per_second: 0.01, burst_count: 5 } },
    });
    try {
      const user = await registerUser(server.baseUrl, 'limited');
      const send = async (token: string, roomId: string, i: number) =>
        (await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/rl${i}`, { token, body: { msgtype: 'm.text', body: `${i}` } })).status;
      const own = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body: {} });
      const userStatuses = [];
      for (let i = 0; i < 4; i++) userStatuses.push(await send(user.accessToken, own.body.room_id, i));
      expect(userStatuses).toContain(429);
      const asRoom = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: 'as-fast', body: {} });
      const asStatuses = [];
      for (let i = 0; i < 6; i++) asStatuses.push(await send('as-fast', asRoom.body.room_id, i));
      expect(asStatuses.every((st) => st === 200)).toBe(true);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each(testDialects())('application service core on %s', (dialect) => {
  let server: TestServer;
  let appservice: FakeAppservice;
  let alice: TestUser;
  let dir: string;
  const as = (method: string, path: string, body?: unknown, skipSpecCheck = false) =>
    request(server.baseUrl, method, path, { token: AS_TOKEN, body, skipSpecCheck });

  beforeAll(async () => {
    appservice = new FakeAppservice();
    const url = await appservice.start();
    dir = mkdtempSync(join(tmpdir(), 'skjol-as-'));
    const deadPort = await freePort();
    const files = [
      registrationYaml({ id: 'core', url, as: AS_TOKEN, hs: HS_TOKEN, sender: 'corebot', users: '@bridge_.*:localhost', aliases: '#bridge_.*:localhost' }),
      registrationYaml({ id: 'nourl', url: null, as: 'as-nourl', hs: 'hs-nourl', sender: 'nourlbot' }),
      registrationYaml({ id: 'dead', url: `http://127.0.0.1:${deadPort}`, as: 'as-dead', hs: 'hs-dead', sender: 'deadbot' }),
    ].map((text, i) => {
      const file = join(dir, `reg${i}.yaml`);
      writeFileSync(file, text);
      return file;
    });
    server = await startHomeserver({ dialect, config: { app_service_config_files: files, enable_registration: true } });
    appservice.hsUrl = server.baseUrl;
    alice = await registerUser(server.baseUrl, 'alice');
  });

  afterAll(async () => {
    await server?.close();
    await appservice?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the sender and authenticates the as_token as the sender', async () => {
    const me = await as('GET', '/_matrix/client/v3/account/whoami');
    expect(me.status).toBe(200);
    expect(me.body.user_id).toBe('@corebot:localhost');
    const profile = await request(server.baseUrl, 'GET', '/_matrix/client/v3/profile/@nourlbot:localhost');
    expect(profile.status).toBe(200);
  });

  it('registers namespaced users with m.login.application_service, and only those', async () => {
    const ok = await as('POST', '/_matrix/client/v3/register', { type: 'm.login.application_service', username: 'bridge_alice' });
    expect(ok.status).toBe(200);
    expect(ok.body.user_id).toBe('@bridge_alice:localhost');
    expect(typeof ok.body.access_token).toBe('string');
    const outside = await as('POST', '/_matrix/client/v3/register', { type: 'm.login.application_service', username: 'notbridged' });
    expect(outside.status).toBe(400);
    expect(outside.body.errcode).toBe('M_EXCLUSIVE');
    const noToken = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', {
      body: { type: 'm.login.application_service', username: 'bridge_x' },
      // 401 M_MISSING_TOKEN (registration.ts) is not the spec's UIA 401 shape.
      skipSpecCheck: true,
    });
    expect(noToken.status).toBe(401);
  });

  it('refuses ordinary registration inside an exclusive namespace', async () => {
    const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', { body: { username: 'bridge_bob', password: 'long enough password' } });
    expect(res.status).toBe(400);
    expect(res.body.errcode).toBe('M_EXCLUSIVE');
    const sender = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', { body: { username: 'corebot', password: 'long enough password' } });
    expect(sender.status).toBe(400);
  });

  it('masquerades as namespaced users only', async () => {
    const inside = await as('GET', '/_matrix/client/v3/account/whoami?user_id=' + encodeURIComponent('@bridge_alice:localhost'));
    expect(inside.status).toBe(200);
    expect(inside.body.user_id).toBe('@bridge_alice:localhost');
    const outside = await as('GET', '/_matrix/client/v3/account/whoami?user_id=' + encodeURIComponent(alice.userId));
    expect(outside.status).toBe(403);
    expect(outside.body.errcode).toBe('M_FORBIDDEN');
    const unregistered = await as('GET', '/_matrix/client/v3/account/whoami?user_id=' + encodeURIComponent('@bridge_nobody:localhost'));
    expect(unregistered.status).toBe(403);
  });

  it('masquerades as a device of the user (MSC3202)', async () => {
    const reg = await as('POST', '/_matrix/client/v3/register', { type: 'm.login.application_service', username: 'bridge_dev', device_id: 'BRIDGEDEV' });
    expect(reg.status).toBe(200);
    const user = encodeURIComponent('@bridge_dev:localhost');
    const known = await as('GET', `/_matrix/client/v3/account/whoami?user_id=${user}&org.matrix.msc3202.device_id=BRIDGEDEV`);
    expect(known.status).toBe(200);
    expect(known.body.device_id).toBe('BRIDGEDEV');
    const unknown = await as('GET', `/_matrix/client/v3/account/whoami?user_id=${user}&device_id=NOPE`);
    expect(unknown.status).toBe(403);
  });

  it('creates and deletes devices of its users without logging in (MSC4190)', async () => {
    const reg = await as('POST', '/_matrix/client/v3/register', { type: 'm.login.application_service', username: 'bridge_devs', inhibit_login: true });
    expect(reg.status).toBe(200);
    const user = encodeURIComponent('@bridge_devs:localhost');
    const created = await as('PUT', `/_matrix/client/v3/devices/NEWDEV?user_id=${user}`, { display_name: 'Bridge device' });
    expect(created.status).toBe(201);
    const again = await as('PUT', `/_matrix/client/v3/devices/NEWDEV?user_id=${user}`, { display_name: 'Renamed' });
    expect(again.status).toBe(200);
    const listed = await as('GET', `/_matrix/client/v3/devices?user_id=${user}`);
    expect(listed.body.devices.map((d: { device_id: string; display_name?: string }) => [d.device_id, d.display_name])).toContainEqual(['NEWDEV', 'Renamed']);
    // The new device can be used at once, e.g. to upload its keys.
    const whoami = await as('GET', `/_matrix/client/v3/account/whoami?user_id=${user}&org.matrix.msc3202.device_id=NEWDEV`);
    expect(whoami.body.device_id).toBe('NEWDEV');
    const deleted = await as('DELETE', `/_matrix/client/v3/devices/NEWDEV?user_id=${user}`, {});
    expect(deleted.status).toBe(200);
    expect((await as('GET', `/_matrix/client/v3/devices?user_id=${user}`)).body.devices).toEqual([]);
  });

  it('logs in with m.login.application_service', async () => {
    const body = { type: 'm.login.application_service', identifier: { type: 'm.id.user', user: 'bridge_alice' } };
    const flows = await request(server.baseUrl, 'GET', '/_matrix/client/v3/login');
    expect(flows.body.flows.map((f: { type: string }) => f.type)).toContain('m.login.application_service');
    const ok = await as('POST', '/_matrix/client/v3/login', body);
    expect(ok.status).toBe(200);
    expect(ok.body.user_id).toBe('@bridge_alice:localhost');
    const me = await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami', { token: ok.body.access_token });
    expect(me.body.user_id).toBe('@bridge_alice:localhost');
    const outside = await as('POST', '/_matrix/client/v3/login', { ...body, identifier: { type: 'm.id.user', user: 'alice' } });
    expect(outside.status).toBe(403);
    const noToken = await request(server.baseUrl, 'POST', '/_matrix/client/v3/login', { body });
    expect(noToken.status).toBe(401);
  });

  it('refuses aliases in an exclusive namespace to ordinary users', async () => {
    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    expect(room.status).toBe(200);
    const put = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/directory/room/${encodeURIComponent('#bridge_taken:localhost')}`, {
      token: alice.accessToken,
      body: { room_id: room.body.room_id },
    });
    expect(put.status).toBe(400);
    expect(put.body.errcode).toBe('M_EXCLUSIVE');
    const create = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { room_alias_name: 'bridge_mine' } });
    expect(create.status).toBe(400);
    expect(create.body.errcode).toBe('M_EXCLUSIVE');
    const free = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/directory/room/${encodeURIComponent('#alices:localhost')}`, {
      token: alice.accessToken,
      body: { room_id: room.body.room_id },
    });
    expect(free.status).toBe(200);
    const asRoom = await as('POST', '/_matrix/client/v3/createRoom', { room_alias_name: 'bridge_owned' });
    expect(asRoom.status).toBe(200);
  });

  // SyTest "AS can make room aliases": in its namespace, for a room it is not in (as Synapse); not outside it.
  it('lets the service alias any room inside its alias namespace without joining it', async () => {
    const room = (await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} })).body.room_id as string;
    const put = await as('PUT', `/_matrix/client/v3/directory/room/${encodeURIComponent('#bridge_aliased:localhost')}`, { room_id: room });
    expect(put.status).toBe(200);
    expect((await request(server.baseUrl, 'GET', `/_matrix/client/v3/directory/room/${encodeURIComponent('#bridge_aliased:localhost')}`)).body.room_id).toBe(room);
    const outside = await as('PUT', `/_matrix/client/v3/directory/room/${encodeURIComponent('#not_bridged:localhost')}`, { room_id: room });
    expect(outside.status).toBe(400);
    expect(outside.body.errcode).toBe('M_EXCLUSIVE');
  });

  // SyTest "AS can publish rooms in their own list", "AS and main public room lists are separate".
  it('keeps the service\'s network room list apart from the main public room list', async () => {
    const room = (await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'public_chat' } })).body.room_id as string;
    const listPath = `/_matrix/client/v3/directory/list/appservice/random-network/${encodeURIComponent(room)}`;
    expect((await as('PUT', listPath, { visibility: 'public' })).status).toBe(200);
    const list = async (body: Record<string, unknown>) =>
      ((await request(server.baseUrl, 'POST', '/_matrix/client/v3/publicRooms', { token: alice.accessToken, body })).body.chunk as Array<{ room_id: string }>).map((r) => r.room_id);
    expect(await list({})).not.toContain(room);
    expect(await list({ third_party_instance_id: 'core|random-network' })).toContain(room);
    expect(await list({ third_party_instance_id: 'core|other-network' })).not.toContain(room);
    expect(await list({ include_all_networks: true })).toContain(room);
    // Ordinary users cannot edit a service's list.
    const byAlice = await request(server.baseUrl, 'PUT', listPath, { token: alice.accessToken, body: { visibility: 'public' } });
    expect(byAlice.status).toBe(403);
    expect((await as('DELETE', listPath)).status).toBe(200);
    expect(await list({ third_party_instance_id: 'core|random-network' })).not.toContain(room);
  });

  it('queries the service for an unknown namespaced user (profile lookup, invite)', async () => {
    const before = appservice.requests.length;
    const profile = await request(server.baseUrl, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent('@bridge_ondemand1:localhost')}`, { token: alice.accessToken });
    expect(profile.status).toBe(200);
    expect(profile.body.displayname).toBe('bridge_ondemand1');
    const query = appservice.requests.slice(before).find((r) => r.path === '/_matrix/app/v1/users/@bridge_ondemand1:localhost');
    expect(query).toMatchObject({ method: 'GET', authorization: `Bearer ${HS_TOKEN}` });

    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    const invite = await request(server.baseUrl, 'POST', `/_matrix/client/v3/rooms/${encodeURIComponent(room.body.room_id)}/invite`, {
      token: alice.accessToken,
      body: { user_id: '@bridge_ondemand2:localhost' },
    });
    expect(invite.status).toBe(200);
    // createRoom's invite list asks too, before the room exists, so the user is there for the invite.
    const beforeCreate = appservice.requests.length;
    const dm = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { is_direct: true, invite: ['@bridge_ondemand3:localhost'] } });
    expect(dm.status).toBe(200);
    expect(appservice.requests.slice(beforeCreate).some((r) => r.path === '/_matrix/app/v1/users/@bridge_ondemand3:localhost')).toBe(true);
    const ghostProfile = await request(server.baseUrl, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent('@bridge_ondemand3:localhost')}`, { token: alice.accessToken });
    expect(ghostProfile.status).toBe(200);

    const refused = await request(server.baseUrl, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent('@bridge_ghost:localhost')}`, { token: alice.accessToken });
    expect(refused.status).toBe(404);
    const n = appservice.requests.length;
    const notOurs = await request(server.baseUrl, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent('@nobody:localhost')}`, { token: alice.accessToken });
    expect(notOurs.status).toBe(404);
    expect(appservice.requests.slice(n).filter((r) => r.path.startsWith('/_matrix/app/v1/users/'))).toHaveLength(0);
  });

  it('queries the service for an unknown namespaced alias', async () => {
    const alias = '#bridge_lazy1:localhost';
    const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/directory/room/${encodeURIComponent(alias)}`, { token: alice.accessToken });
    expect(res.status).toBe(200);
    expect(res.body.room_id).toMatch(/^!/);
    expect(appservice.requests.some((r) => r.path === `/_matrix/app/v1/rooms/${alias}` && r.authorization === `Bearer ${HS_TOKEN}`)).toBe(true);
    const join = await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent('#bridge_lazy2:localhost')}`, { token: alice.accessToken, body: {} });
    expect(join.status).toBe(200);
    const missing = await request(server.baseUrl, 'GET', `/_matrix/client/v3/directory/room/${encodeURIComponent('#bridge_never:localhost')}`, { token: alice.accessToken });
    expect(missing.status).toBe(404);
  });

  it('pings the service and reports the errors of the spec', async () => {
    const ping = (id: string, token = AS_TOKEN) =>
      request(server.baseUrl, 'POST', `/_matrix/client/v1/appservice/${id}/ping`, { token, body: { transaction_id: 'txn-1' } });
    const ok = await ping('core');
    expect(ok.status).toBe(200);
    expect(typeof ok.body.duration_ms).toBe('number');
    const received = appservice.requests.filter((r) => r.path === '/_matrix/app/v1/ping').at(-1);
    expect(received).toMatchObject({ method: 'POST', authorization: `Bearer ${HS_TOKEN}`, body: { transaction_id: 'txn-1' } });

    expect((await ping('core', alice.accessToken)).status).toBe(403);
    expect((await ping('core', 'as-nourl')).status).toBe(403);
    const noUrl = await ping('nourl', 'as-nourl');
    expect([noUrl.status, noUrl.body.errcode]).toEqual([400, 'M_URL_NOT_SET']);
    const dead = await ping('dead', 'as-dead');
    expect([dead.status, dead.body.errcode]).toEqual([502, 'M_CONNECTION_FAILED']);

    appservice.pingMode = 'teapot';
    const bad = await ping('core');
    expect(bad.status).toBe(502);
    expect(bad.body).toMatchObject({ errcode: 'M_BAD_STATUS', status: 418, body: 'short and stout' });

    appservice.pingMode = 'hang';
    server.hs.services.appserviceClient.pinger.timeoutMs = 300;
    const slow = await ping('core');
    expect([slow.status, slow.body.errcode]).toEqual([504, 'M_CONNECTION_TIMEOUT']);
    appservice.pingMode = 'ok';
  });

  it('massages timestamps for application service requesters only', async () => {
    const room = await as('POST', '/_matrix/client/v3/createRoom', {});
    expect(room.status).toBe(200);
    const roomId = encodeURIComponent(room.body.room_id);
    const sent = await as('PUT', `/_matrix/client/v3/rooms/${roomId}/send/m.room.message/t1?ts=1234567890`, { msgtype: 'm.text', body: 'old' });
    expect(sent.status).toBe(200);
    const ev = await as('GET', `/_matrix/client/v3/rooms/${roomId}/event/${encodeURIComponent(sent.body.event_id)}`);
    expect(ev.body.origin_server_ts).toBe(1234567890);
    const state = await as('PUT', `/_matrix/client/v3/rooms/${roomId}/state/m.room.topic/?ts=1234567999`, { topic: 'old topic' });
    expect(state.status).toBe(200);
    const stateEv = await as('GET', `/_matrix/client/v3/rooms/${roomId}/event/${encodeURIComponent(state.body.event_id)}`);
    expect(stateEv.body.origin_server_ts).toBe(1234567999);

    const own = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    const ownId = encodeURIComponent(own.body.room_id);
    const plain = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${ownId}/send/m.room.message/t1?ts=1234`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body: 'now' },
    });
    const plainEv = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${ownId}/event/${encodeURIComponent(plain.body.event_id)}`, { token: alice.accessToken });
    expect(plainEv.body.origin_server_ts).toBeGreaterThan(1234);
  });
});

describe('third-party networks answered by application services', () => {
  it('proxies /thirdparty/* to the service that declares the protocol', async () => {
    const { createServer } = await import('node:http');
    const seen: string[] = [];
    const protocol = {
      user_fields: ['network', 'nickname'],
      location_fields: ['network', 'channel'],
      icon: 'mxc://localhost/irc',
      field_types: { network: { regexp: '.*', placeholder: 'libera' }, nickname: { regexp: '.*', placeholder: 'nick' }, channel: { regexp: '#.*', placeholder: '#room' } },
      instances: [{ network_id: 'libera', desc: 'Libera', fields: { network: 'libera' } }],
    };
    const service = createServer((req, res) => {
      seen.push(`${req.url} ${req.headers.authorization}`);
      const url = new URL(req.url!, 'http://x');
      res.setHeader('content-type', 'application/json');
      if (url.pathname === '/_matrix/app/v1/thirdparty/protocol/irc') res.end(JSON.stringify(protocol));
      else if (url.pathname === '/_matrix/app/v1/thirdparty/location/irc') {
        res.end(JSON.stringify([{ alias: '#irc_libera_chat:localhost', protocol: 'irc', fields: { network: 'libera', channel: url.searchParams.get('channel') } }]));
      } else if (url.pathname === '/_matrix/app/v1/thirdparty/user/irc') {
        res.end(JSON.stringify([{ userid: '@irc_bob:localhost', protocol: 'irc', fields: { network: 'libera', nickname: url.searchParams.get('nickname') } }]));
      } else {
        res.statusCode = 404;
        res.end(JSON.stringify({ errcode: 'M_NOT_FOUND', error: 'no' }));
      }
    });
    await new Promise<void>((r) => service.listen(0, '127.0.0.1', () => r()));
    const port = (service.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), 'skjol-as-3p-'));
    const file = join(dir, 'reg.yaml');
    writeFileSync(file, registrationYaml({ id: 'irc', url: `http://127.0.0.1:${port}`, as: 'as-irc', hs: 'hs-irc', sender: 'ircbot', users: '@irc_.*:localhost' }) + 'protocols: [irc]\n');
    const server = await startHomeserver({ config: { app_service_config_files: [file] } });
    try {
      const user = await registerUser(server.baseUrl, 'threepuser');
      const protocols = await request(server.baseUrl, 'GET', '/_matrix/client/v3/thirdparty/protocols', { token: user.accessToken });
      expect(protocols.body.irc.instances[0].network_id).toBe('libera');
      const locations = await request(server.baseUrl, 'GET', '/_matrix/client/v3/thirdparty/location/irc?channel=%23chat', { token: user.accessToken });
      expect(locations.body).toEqual([{ alias: '#irc_libera_chat:localhost', protocol: 'irc', fields: { network: 'libera', channel: '#chat' } }]);
      const users = await request(server.baseUrl, 'GET', '/_matrix/client/v3/thirdparty/user/irc?nickname=bob', { token: user.accessToken });
      expect(users.body[0].userid).toBe('@irc_bob:localhost');
      const unknown = await request(server.baseUrl, 'GET', '/_matrix/client/v3/thirdparty/location/xmpp', { token: user.accessToken });
      expect([unknown.status, unknown.body]).toEqual([200, []]);
      expect(seen.every((s) => s.endsWith('Bearer hs-irc'))).toBe(true);
    } finally {
      await server.close();
      service.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // SyTest "HS provides query metadata" and "HS can provide query metadata on a single protocol", as Synapse.
  it('merges the instances of every service declaring a protocol, and keeps the metadata an hour', async () => {
    const { createServer } = await import('node:http');
    let answers = 0;
    const start = async (instances: unknown[]) => {
      const service = createServer((_req, res) => {
        answers++;
        res.setHeader('content-type', 'application/json');
        // Only the first query gets metadata; later ones must come from the cache.
        res.end(JSON.stringify(answers <= 2 ? { user_fields: ['field1'], location_fields: ['field3'], icon: 'mxc://1234/56/7', instances } : []));
      });
      await new Promise<void>((r) => service.listen(0, '127.0.0.1', () => r()));
      return service;
    };
    const one = await start([{ desc: 'instance 1' }, { desc: 'instance 2' }]);
    const two = await start([{ desc: 'instance 3', network_id: 'net3' }]);
    const dir = mkdtempSync(join(tmpdir(), 'skjol-as-3p-'));
    const files = [one, two].map((service, i) => {
      const file = join(dir, `reg${i}.yaml`);
      const port = (service.address() as { port: number }).port;
      writeFileSync(file, registrationYaml({ id: `ymca${i}`, url: `http://127.0.0.1:${port}`, as: `as-ymca${i}`, hs: `hs-ymca${i}`, sender: `ymcabot${i}` }) + 'protocols: [ymca]\n');
      return file;
    });
    const server = await startHomeserver({ config: { app_service_config_files: files } });
    try {
      const user = await registerUser(server.baseUrl, 'ymcauser');
      const expected = {
        user_fields: ['field1'],
        location_fields: ['field3'],
        icon: 'mxc://1234/56/7',
        instances: [{ desc: 'instance 1' }, { desc: 'instance 2' }, { desc: 'instance 3', network_id: 'net3', instance_id: 'ymca1|net3' }],
      };
      // SyTest's services answer without field_types: their metadata is passed on as it came.
      const all = await request(server.baseUrl, 'GET', '/_matrix/client/v3/thirdparty/protocols', { token: user.accessToken, skipSpecCheck: true });
      expect(all.body).toEqual({ ymca: expected });
      const single = await request(server.baseUrl, 'GET', '/_matrix/client/v3/thirdparty/protocol/ymca', { token: user.accessToken, skipSpecCheck: true });
      expect(single.body).toEqual(expected);
    } finally {
      await server.close();
      one.close();
      two.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

