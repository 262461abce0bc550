import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { createTestCa, issueCert } from './tls.js';

// EDUs across two Skjól servers over real HTTPS (as in join-and-message.test.ts):
//   A localhost:<port>  — alice
//   B 127.0.0.1:<port>  — bob, who owns the room; alice joins it over federation

type SyncBody = Record<string, any>;

async function sync(server: TestServer, user: TestUser, since?: string, timeout = 0): Promise<SyncBody> {
  const q = new URLSearchParams({ timeout: String(timeout) });
  if (since) q.set('since', since);
  const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/sync?${q}`, { token: user.accessToken });
  expect(res.status).toBe(200);
  return res.body;
}

/** Syncs incrementally from `since` until `probe` finds something in a response; returns it and the next token. */
async function syncUntil<T>(
  server: TestServer,
  user: TestUser,
  since: string,
  probe: (body: SyncBody) => T | undefined,
  what: string,
  ms = 20_000,
): Promise<{ value: T; since: string }> {
  const until = Date.now() + ms;
  let token = since;
  for (;;) {
    const body = await sync(server, user, token, 500);
    token = body.next_batch;
    const value = probe(body);
    if (value !== undefined) return { value, since: token };
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
  }
}

function ephemeral(body: SyncBody, roomId: string, type: string): any[] {
  return (body.rooms?.join?.[roomId]?.ephemeral?.events ?? []).filter((e: { type: string }) => e.type === type);
}

async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, what: string, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each(testDialects())('EDUs between two servers (typing, receipts, presence, to-device), on %s', (dialect) => {
  let dir: string;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;
  let aliceSince: string;
  let bobSince: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-fed-edus-'));
    const ca = createTestCa(dir);
    const [pA, pB] = [await freePort(), await freePort()];
    const config = { federation_custom_ca_list: [ca.caPath] };
    B = await startHomeserver({ dialect, serverName: `127.0.0.1:${pB}`, tls: { ...issueCert(dir, 'b', ca), port: pB }, config });
    A = await startHomeserver({ dialect, serverName: `localhost:${pA}`, tls: { ...issueCert(dir, 'a', ca), port: pA }, config });
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', {
      token: bob.accessToken,
      body: { preset: 'public_chat', room_alias_name: 'edus', name: 'EDUs' },
    });
    expect(created.status).toBe(200);
    roomId = created.body.room_id;
    const joined = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(`#edus:${B.serverName}`)}`, { token: alice.accessToken, body: {} });
    expect(joined).toMatchObject({ status: 200, body: { room_id: roomId } });
    // Both see the other joined before the EDUs start.
    await eventually(async () => {
      const res = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`, { token: bob.accessToken });
      return res.body?.joined?.[alice.userId] ? true : undefined;
    }, 'alice joined on B');
    aliceSince = (await sync(A, alice)).next_batch;
    bobSince = (await sync(B, bob)).next_batch;
  }, 90_000);

  afterAll(async () => {
    await Promise.all([A, B].filter(Boolean).map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("bob's typing on B shows in alice's /sync on A, and so does its end", async () => {
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(bob.userId)}`;
    expect((await request(B.baseUrl, 'PUT', path, { token: bob.accessToken, body: { typing: true, timeout: 30_000 } })).status).toBe(200);
    let r = await syncUntil(A, alice, aliceSince, (b) => ephemeral(b, roomId, 'm.typing').find((e) => e.content.user_ids.includes(bob.userId)), 'bob typing on A');
    expect(r.value.content.user_ids).toEqual([bob.userId]);
    expect((await request(B.baseUrl, 'PUT', path, { token: bob.accessToken, body: { typing: false } })).status).toBe(200);
    r = await syncUntil(A, alice, r.since, (b) => ephemeral(b, roomId, 'm.typing').find((e) => e.content.user_ids.length === 0), 'bob stopped typing on A');
    aliceSince = r.since;

    // And the other way round.
    const alicePath = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(alice.userId)}`;
    expect((await request(A.baseUrl, 'PUT', alicePath, { token: alice.accessToken, body: { typing: true, timeout: 30_000 } })).status).toBe(200);
    let atBob = await syncUntil(B, bob, bobSince, (b) => ephemeral(b, roomId, 'm.typing').find((e) => e.content.user_ids.includes(alice.userId)), 'alice typing on B');
    expect((await request(A.baseUrl, 'PUT', alicePath, { token: alice.accessToken, body: { typing: false } })).status).toBe(200);
    atBob = await syncUntil(B, bob, atBob.since, (b) => ephemeral(b, roomId, 'm.typing').find((e) => e.content.user_ids.length === 0), 'alice stopped typing on B');
    bobSince = atBob.since;
  });

  it("bob's read receipt on B shows in alice's /sync on A", async () => {
    const sent = await request(A.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body: 'read me' },
    });
    expect(sent.status).toBe(200);
    const eventId: string = sent.body.event_id;
    await eventually(async () => {
      const res = await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(eventId)}`, { token: bob.accessToken, skipSpecCheck: true });
      return res.status === 200 ? true : undefined;
    }, 'the message on B');
    const receipt = await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/receipt/m.read/${encodeURIComponent(eventId)}`, {
      token: bob.accessToken,
      body: {},
    });
    expect(receipt.status).toBe(200);
    const r = await syncUntil(A, alice, aliceSince, (b) => ephemeral(b, roomId, 'm.receipt').find((e) => e.content[eventId]?.['m.read']?.[bob.userId]), "bob's receipt on A");
    expect(r.value.content[eventId]['m.read'][bob.userId]).toEqual({ ts: expect.any(Number) });
    aliceSince = r.since;

    // A private receipt stays on B.
    const priv = await request(B.baseUrl, 'POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/receipt/m.read.private/${encodeURIComponent(eventId)}`, {
      token: bob.accessToken,
      body: {},
    });
    expect(priv.status).toBe(200);
    await B.hs.services.federationEdus.idle();
    const queued = await B.hs.services.db.knex('federation_outbox').where({ kind: 'edu' }).select('payload');
    expect(queued.map((r: { payload: string }) => JSON.parse(r.payload)).filter((e: { edu_type: string }) => e.edu_type === 'm.receipt' && JSON.stringify(e).includes('m.read.private'))).toEqual([]);
  });

  it("bob's presence on B shows in alice's /sync on A", async () => {
    const res = await request(B.baseUrl, 'PUT', `/_matrix/client/v3/presence/${encodeURIComponent(bob.userId)}/status`, {
      token: bob.accessToken,
      body: { presence: 'online', status_msg: 'federating' },
    });
    expect(res.status).toBe(200);
    const r = await syncUntil(
      A,
      alice,
      aliceSince,
      (b) => (b.presence?.events ?? []).find((e: { sender: string; content: { status_msg?: string } }) => e.sender === bob.userId && e.content.status_msg === 'federating'),
      "bob's presence on A",
    );
    expect(r.value.content.presence).toBe('online');
    aliceSince = r.since;
  });

  it('accepts EDUs only for users of the sending server', async () => {
    const client = A.hs.services.federation.client;
    const mallory = '@mallory:elsewhere.example';
    expect(B.hs.services.edus.typing.typers(roomId)).not.toContain(alice.userId);
    await client.put(B.serverName, '/_matrix/federation/v1/send/forged-1', {
      origin: A.serverName,
      origin_server_ts: Date.now(),
      pdus: [],
      edus: [
        { edu_type: 'm.typing', content: { room_id: roomId, user_id: bob.userId, typing: true } }, // B's own user
        { edu_type: 'm.typing', content: { room_id: roomId, user_id: mallory, typing: true } },
        { edu_type: 'm.presence', content: { push: [{ user_id: bob.userId, presence: 'offline', last_active_ago: 0 }] } },
        { edu_type: 'm.typing', content: 'not an object' },
        { edu_type: 'm.unknown', content: {} },
        { edu_type: 'm.typing', content: { room_id: roomId, user_id: alice.userId, typing: true } }, // legitimate
      ],
    });
    const typing = B.hs.services.edus.typing.typers(roomId);
    expect(typing).toContain(alice.userId);
    expect(typing).not.toContain(mallory);
    expect(typing).not.toContain(bob.userId);
    const presence = await request(B.baseUrl, 'GET', `/_matrix/client/v3/presence/${encodeURIComponent(bob.userId)}/status`, { token: bob.accessToken });
    expect(presence.body.status_msg).toBe('federating');
  });

  it('delivers m.direct_to_device to local devices once per message_id', async () => {
    const client = A.hs.services.federation.client;
    const edu = {
      edu_type: 'm.direct_to_device',
      content: {
        sender: alice.userId,
        type: 'org.example.ping',
        message_id: 'msg-1',
        messages: { [bob.userId]: { [bob.deviceId]: { n: 1 } }, '@someone:third.example': { X: { n: 2 } } },
      },
    };
    await client.put(B.serverName, '/_matrix/federation/v1/send/td-1', { origin: A.serverName, origin_server_ts: Date.now(), pdus: [], edus: [edu] });
    // The same message again in another transaction: delivered once.
    await client.put(B.serverName, '/_matrix/federation/v1/send/td-2', { origin: A.serverName, origin_server_ts: Date.now(), pdus: [], edus: [edu] });
    // A sender of another server in the EDU: refused.
    await client.put(B.serverName, '/_matrix/federation/v1/send/td-3', {
      origin: A.serverName,
      origin_server_ts: Date.now(),
      pdus: [],
      edus: [{ ...edu, content: { ...edu.content, sender: '@eve:third.example', message_id: 'msg-2' } }],
    });
    const r = await syncUntil(B, bob, bobSince, (b) => ((b.to_device?.events ?? []).length ? b.to_device.events : undefined), 'to-device on B');
    expect(r.value).toEqual([{ sender: alice.userId, type: 'org.example.ping', content: { n: 1 } }]);
    const after = await sync(B, bob, r.since, 500);
    expect(after.to_device?.events ?? []).toEqual([]);
    bobSince = after.next_batch;
    // Nothing was relayed to the third server.
    expect(await B.hs.services.db.knex('federation_outbox').where({ destination: 'third.example' })).toEqual([]);
  });

  it('sends to-device messages for remote users as m.direct_to_device', async () => {
    const res = await request(A.baseUrl, 'PUT', `/_matrix/client/v3/sendToDevice/org.example.hello/txn-td-1`, {
      token: alice.accessToken,
      body: { messages: { [bob.userId]: { '*': { hello: 'bob' } } } },
    });
    expect(res.status).toBe(200);
    const r = await syncUntil(B, bob, bobSince, (b) => (b.to_device?.events ?? []).find((e: { type: string }) => e.type === 'org.example.hello'), 'the to-device message on B');
    expect(r.value).toEqual({ sender: alice.userId, type: 'org.example.hello', content: { hello: 'bob' } });
    bobSince = r.since;
  });
  it('a new room companion on another server gets presence set before the room was shared (as Synapse)', async () => {
    const carol = await registerUser(A.baseUrl, 'carol');
    const dave = await registerUser(B.baseUrl, 'dave');
    for (const [server, user, msg] of [[A, carol, 'carol here'], [B, dave, 'dave here']] as const) {
      const res = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/presence/${encodeURIComponent(user.userId)}/status`, {
        token: user.accessToken,
        body: { presence: 'online', status_msg: msg },
      });
      expect(res.status).toBe(200);
    }
    const carolSince = (await sync(A, carol)).next_batch;
    const daveSince = (await sync(B, dave)).next_batch;
    const created = await request(A.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: carol.accessToken, body: { preset: 'private_chat', invite: [dave.userId] } });
    expect(created.status).toBe(200);
    const room: string = created.body.room_id;
    await syncUntil(B, dave, daveSince, (b) => b.rooms?.invite?.[room], 'the invite on B');
    const joined = await request(B.baseUrl, 'POST', `/_matrix/client/v3/join/${encodeURIComponent(room)}`, { token: dave.accessToken, body: {} });
    expect(joined.status).toBe(200);

    const presenceOf = (userId: string) => (b: SyncBody) =>
      (b.presence?.events ?? []).find((e: { sender: string; content: { presence: string } }) => e.sender === userId && e.content.presence === 'online');
    const atA = await syncUntil(A, carol, carolSince, presenceOf(dave.userId), "dave's presence on A");
    expect(atA.value.content).toMatchObject({ presence: 'online', status_msg: 'dave here' });
    const atB = await syncUntil(B, dave, daveSince, presenceOf(carol.userId), "carol's presence on B");
    expect(atB.value.content).toMatchObject({ presence: 'online', status_msg: 'carol here' });
  });
});
