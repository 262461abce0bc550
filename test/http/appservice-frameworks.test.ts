import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort, startHomeserver, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// Real application-service frameworks written by others, run against a real Skjól:
// - matrix-appservice-bridge (the library matrix.org's Node bridges are built on);
// - @vector-im/matrix-bot-sdk's Appservice class.
//
// Both load @matrix-org/matrix-sdk-crypto-nodejs at require time, whose native binary is downloaded by a
// postinstall script these machines cannot run. Neither test uses encryption, so the module is replaced by
// an empty one in Node's CommonJS cache before either framework is loaded (vi.mock does not reach
// require() calls inside externalised CommonJS dependencies).
const require = createRequire(import.meta.url);
const cryptoPath = require.resolve('@matrix-org/matrix-sdk-crypto-nodejs');
require.cache[cryptoPath] = { id: cryptoPath, filename: cryptoPath, loaded: true, exports: {}, children: [], paths: [] } as unknown as NodeJS.Module;

type BridgeModule = typeof import('matrix-appservice-bridge');
type BotSdkModule = typeof import('@vector-im/matrix-bot-sdk');
type Json = Record<string, any>;

const quiet = () => undefined;

async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Reads the user's /sync until `find` matches one timeline event of `roomId`. */
async function syncUntil(baseUrl: string, user: TestUser, roomId: string, find: (e: Json) => boolean): Promise<Json> {
  let since: string | undefined;
  return waitFor(async () => {
    const q = since ? `?since=${encodeURIComponent(since)}&timeout=1000` : '?timeout=0';
    const res = await request(baseUrl, 'GET', `/_matrix/client/v3/sync${q}`, { token: user.accessToken });
    expect(res.status).toBe(200);
    since = res.body.next_batch;
    const events: Json[] = res.body.rooms?.join?.[roomId]?.timeline?.events ?? [];
    return events.find(find);
  }, `an event in ${roomId} via /sync`);
}

/**
 * Registers a ghost the spec way (as_token, no user_id) and marks it registered in the framework's own store.
 * The frameworks' own way (POST /register?user_id=<ghost>) is tested on its own below.
 */
async function registerGhost(baseUrl: string, asToken: string, storage: { addRegisteredUser(userId: string): unknown }, userId: string): Promise<void> {
  const res = await request(baseUrl, 'POST', '/_matrix/client/v3/register', {
    token: asToken,
    body: { type: 'm.login.application_service', username: userId.slice(1, userId.indexOf(':')), inhibit_login: true },
  });
  if (res.status !== 200 && res.body.errcode !== 'M_USER_IN_USE') throw new Error(`register ${userId}: ${res.status} ${JSON.stringify(res.body)}`);
  await storage.addRegisteredUser(userId);
}

/** What a framework's Intent.ensureRegistered sends, and what Synapse answers it with (200). */
async function frameworkStyleRegister(baseUrl: string, asToken: string, userId: string) {
  return request(baseUrl, 'POST', `/_matrix/client/v3/register?user_id=${encodeURIComponent(userId)}`, {
    token: asToken,
    body: { type: 'm.login.application_service', username: userId.slice(1, userId.indexOf(':')) },
  });
}

const send = async (baseUrl: string, user: TestUser, roomId: string, body: string, txn = `t${Math.random()}`) => {
  const res = await request(baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`, {
    token: user.accessToken,
    body: { msgtype: 'm.text', body },
  });
  expect(res.status).toBe(200);
  return res.body.event_id as string;
};

describe('matrix-appservice-bridge against Skjól', () => {
  let mod: BridgeModule;
  let dir: string;
  let server: TestServer;
  let bridge: InstanceType<BridgeModule['Bridge']>;
  let port: number;
  let alice: TestUser;
  let asToken: string;
  const ghostStore = () => (bridge as unknown as { botSdkAS: { storage: { addRegisteredUser(userId: string): unknown } } }).botSdkAS.storage;
  const ghost = async (userId: string) => {
    await registerGhost(server.baseUrl, asToken, ghostStore(), userId);
    return bridge.getIntent(userId);
  };
  const events: Json[] = [];
  const ephemeral: Json[] = [];
  const userQueries: string[] = [];
  const aliasQueries: string[] = [];

  beforeAll(async () => {
    mod = await import('matrix-appservice-bridge');
    mod.Logger.configure({ console: 'off' });
    dir = mkdtempSync(join(tmpdir(), 'skjol-as-bridge-'));
    port = await freePort();
    const reg = new mod.AppServiceRegistration(`http://127.0.0.1:${port}`);
    reg.setId('mab');
    reg.setHomeserverToken(mod.AppServiceRegistration.generateToken());
    asToken = mod.AppServiceRegistration.generateToken();
    reg.setAppServiceToken(asToken);
    reg.setSenderLocalpart('mabbot');
    reg.addRegexPattern('users', '@ghost_.*:localhost', true);
    reg.addRegexPattern('aliases', '#bridge_.*:localhost', true);
    reg.pushEphemeral = true;
    reg.setRateLimited(false);
    const regPath = join(dir, 'registration.yaml');
    reg.outputAsYaml(regPath);

    server = await startHomeserver({ config: { app_service_config_files: [regPath] } });
    alice = await registerUser(server.baseUrl, 'alice');

    bridge = new mod.Bridge({
      homeserverUrl: server.baseUrl,
      domain: 'localhost',
      registration: regPath,
      disableStores: true,
      disableContext: true,
      suppressEcho: true,
      controller: {
        onLog: quiet,
        onEvent: (req) => {
          events.push(req.getData() as Json);
        },
        onEphemeralEvent: (req) => {
          ephemeral.push(req.getData() as Json);
        },
        onUserQuery: async (user) => {
          userQueries.push(user.getId());
          // The bridge then runs its Intent's ensureRegistered + setDisplayName (see registerGhost).
          await registerGhost(server.baseUrl, asToken, ghostStore(), user.getId());
          return { name: `Ghost ${user.localpart}` };
        },
        onAliasQuery: (alias, localpart) => {
          aliasQueries.push(alias);
          return { creationOpts: { room_alias_name: localpart, preset: 'public_chat', name: `Bridged ${localpart}` } };
        },
      },
    });
    await bridge.initialise();
    await bridge.listen(port, '127.0.0.1');
  }, 60_000);

  afterAll(async () => {
    const http = (bridge?.appService as unknown as { server?: Server } | undefined)?.server;
    http?.closeAllConnections();
    await bridge?.close().catch(() => undefined);
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers a ghost the way the framework does (POST /register?user_id=<ghost>)', async () => {
    const res = await frameworkStyleRegister(server.baseUrl, asToken, '@ghost_fw:localhost');
    expect(res.status).toBe(200);
  });

  it('lets the bridge’s own Intent register a new ghost', async () => {
    await bridge.getIntent('@ghost_fw2:localhost').ensureRegistered();
    expect((await request(server.baseUrl, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent('@ghost_fw2:localhost')}`)).status).toBe(200);
  });

  it('creates a ghost on demand when a Matrix user invites it, via the bridge’s user query', async () => {
    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'private_chat' } });
    expect(room.status).toBe(200);
    const invite = await request(server.baseUrl, 'POST', `/_matrix/client/v3/rooms/${encodeURIComponent(room.body.room_id)}/invite`, {
      token: alice.accessToken,
      body: { user_id: '@ghost_x:localhost' },
    });
    expect(invite.status).toBe(200);
    expect(userQueries).toContain('@ghost_x:localhost');
    const profile = await request(server.baseUrl, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent('@ghost_x:localhost')}`, { token: alice.accessToken });
    expect(profile.status).toBe(200);
    expect(profile.body.displayname).toBe('Ghost ghost_x');
  });

  it('relays messages both ways: Matrix → onEvent, and the ghost’s Intent → the Matrix user’s /sync', async () => {
    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'private_chat', invite: ['@ghost_chat:localhost'] } });
    expect(room.status).toBe(200);
    const roomId: string = room.body.room_id;
    const intent = await ghost('@ghost_chat:localhost');
    await intent.join(roomId);

    const id = await send(server.baseUrl, alice, roomId, 'hello bridge');
    const got = await waitFor(() => events.find((e) => e.event_id === id), 'alice’s message at onEvent');
    expect(got).toMatchObject({ room_id: roomId, sender: alice.userId, type: 'm.room.message', content: { body: 'hello bridge' } });

    const sent = await intent.sendText(roomId, 'hello from the remote side');
    const seen = await syncUntil(server.baseUrl, alice, roomId, (e) => e.event_id === sent.event_id);
    expect(seen).toMatchObject({ sender: '@ghost_chat:localhost', content: { msgtype: 'm.text', body: 'hello from the remote side' } });
  });

  it('creates a room on demand when a Matrix user joins an alias in the namespace', async () => {
    const join = await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent('#bridge_room:localhost')}`, { token: alice.accessToken, body: {} });
    expect(join.status).toBe(200);
    expect(aliasQueries).toContain('#bridge_room:localhost');
    const resolved = await request(server.baseUrl, 'GET', `/_matrix/client/v3/directory/room/${encodeURIComponent('#bridge_room:localhost')}`, { token: alice.accessToken });
    expect(resolved.status).toBe(200);
    expect(resolved.body.room_id).toBe(join.body.room_id);
    const name = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(join.body.room_id)}/state/m.room.name/`, { token: alice.accessToken });
    expect(name.body.name).toBe('Bridged bridge_room');
  });

  it('refuses the exclusive namespace to ordinary users', async () => {
    const first = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', { body: { username: 'ghost_y', password: 'pw-ghost-y-secret' } });
    const res =
      first.status === 401
        ? await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', {
            body: { username: 'ghost_y', password: 'pw-ghost-y-secret', auth: { type: 'm.login.dummy', session: first.body.session } },
          })
        : first;
    expect(res.status).toBe(400);
    expect(res.body.errcode).toBe('M_EXCLUSIVE');
    const alias = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/directory/room/${encodeURIComponent('#bridge_mine:localhost')}`, {
      token: alice.accessToken,
      body: { room_id: (await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} })).body.room_id },
    });
    expect(alias.status).toBe(400);
    expect(alias.body.errcode).toBe('M_EXCLUSIVE');
  });

  it('replays the transactions missed while the bridge was down, once', async () => {
    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'private_chat', invite: ['@ghost_down:localhost'] } });
    const roomId: string = room.body.room_id;
    await (await ghost('@ghost_down:localhost')).join(roomId);

    const appService = bridge.appService as unknown as { server: Server; listen(port: number, host: string): Promise<void> };
    appService.server.closeAllConnections();
    await new Promise<void>((r) => appService.server.close(() => r()));
    const id = await send(server.baseUrl, alice, roomId, 'sent while the bridge was down');
    // The homeserver tried and failed at least once.
    await waitFor(async () => {
      const row = await server.hs.services.db.knex('appservice_state').where({ service_id: 'mab' }).first();
      return row && Number(row.retry_count) > 0;
    }, 'a failed delivery');
    expect(events.some((e) => e.event_id === id)).toBe(false);

    await appService.listen(port, '127.0.0.1');
    await waitFor(() => events.some((e) => e.event_id === id), 'the replayed event', 20_000);
    const marker = await send(server.baseUrl, alice, roomId, 'after the replay');
    await waitFor(() => events.some((e) => e.event_id === marker), 'the next event');
    expect(events.filter((e) => e.event_id === id)).toHaveLength(1);
  }, 40_000);

  it('delivers typing notifications as ephemeral events (receive_ephemeral)', async () => {
    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'private_chat', invite: ['@ghost_typing:localhost'] } });
    const roomId: string = room.body.room_id;
    await (await ghost('@ghost_typing:localhost')).join(roomId);
    const typing = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(alice.userId)}`, {
      token: alice.accessToken,
      body: { typing: true, timeout: 10_000 },
    });
    expect(typing.status).toBe(200);
    const ev = await waitFor(
      () => ephemeral.find((e) => e.type === 'm.typing' && e.room_id === roomId && (e.content?.user_ids ?? []).includes(alice.userId)),
      'the typing notification at onEphemeralEvent',
    );
    expect(ev.content.user_ids).toEqual([alice.userId]);
  });
});

describe('@vector-im/matrix-bot-sdk Appservice against Skjól', () => {
  let sdk: BotSdkModule;
  let dir: string;
  let server: TestServer;
  let appservice: InstanceType<BotSdkModule['Appservice']>;
  let alice: TestUser;
  let storage: InstanceType<BotSdkModule['MemoryStorageProvider']>;

  beforeAll(async () => {
    sdk = await import('@vector-im/matrix-bot-sdk');
    sdk.LogService.setLevel(sdk.LogLevel.ERROR);
    sdk.LogService.muteModule('Appservice');
    dir = mkdtempSync(join(tmpdir(), 'skjol-as-botsdk-'));
    const port = await freePort();
    const registration = {
      id: 'botsdk',
      url: `http://127.0.0.1:${port}`,
      as_token: 'as-token-botsdk',
      hs_token: 'hs-token-botsdk',
      sender_localpart: 'botsdk',
      namespaces: { users: [{ exclusive: true, regex: '@sdk_.*:localhost' }], aliases: [], rooms: [] },
      rate_limited: false,
    };
    const regPath = join(dir, 'registration.yaml');
    writeFileSync(regPath, stringify(registration));
    server = await startHomeserver({ config: { app_service_config_files: [regPath] } });
    alice = await registerUser(server.baseUrl, 'alice');
    appservice = new sdk.Appservice({
      port,
      bindAddress: '127.0.0.1',
      homeserverName: 'localhost',
      homeserverUrl: server.baseUrl,
      registration,
      storage: (storage = new sdk.MemoryStorageProvider()),
    });
    await appservice.begin();
  }, 60_000);

  afterAll(async () => {
    appservice?.stop();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets its Intent register a new namespaced user itself', async () => {
    const intent = appservice.getIntentForSuffix('fresh');
    await intent.ensureRegistered();
    expect((await request(server.baseUrl, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent(intent.userId)}`)).status).toBe(200);
  });

  it('hands a message to a namespaced user to its room.message handler, and its intent replies', async () => {
    const messages: Json[] = [];
    appservice.on('room.message', (roomId: string, event: Json) => {
      messages.push({ roomId, ...event });
    });
    const intent = appservice.getIntentForSuffix('helper');
    expect(intent.userId).toBe('@sdk_helper:localhost');
    await registerGhost(server.baseUrl, 'as-token-botsdk', storage, intent.userId);
    await intent.ensureRegistered();

    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: { preset: 'private_chat', invite: [intent.userId] } });
    const roomId: string = room.body.room_id;
    await intent.joinRoom(roomId);
    const id = await send(server.baseUrl, alice, roomId, 'ping sdk');
    const got = await waitFor(() => messages.find((m) => m.event_id === id), 'the message at room.message');
    expect(got).toMatchObject({ roomId, sender: alice.userId, content: { body: 'ping sdk' } });

    const reply = await intent.sendText(roomId, 'pong from sdk');
    const seen = await syncUntil(server.baseUrl, alice, roomId, (e) => e.event_id === reply);
    expect(seen).toMatchObject({ sender: '@sdk_helper:localhost', content: { body: 'pong from sdk' } });
  });
});
