import { request as httpsRequest } from 'node:https';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPdu } from '../../src/rooms/eventFormat.js';
import { getRoomVersion } from '../../src/rooms/roomVersions.js';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { enc, eventually, startFleet, type Fleet } from './helpers.js';

/** A pino logger at info whose lines are kept, parsed, for the test to read. */
function capturedLogger() {
  const lines: Array<Record<string, any>> = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line));
      }
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines, text: () => raw.join('\n') };
}

/** A raw signed-looking request another server would never send: a forged X-Matrix signature. */
function forgedRequest(url: string, authorization: string | undefined, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = httpsRequest(url, { method: 'PUT', rejectUnauthorized: false, headers: { ...(authorization ? { authorization } : {}), 'content-type': 'application/json', 'content-length': payload.length } });
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.end(payload);
  });
}

// What an operator reads at info when federation goes wrong: refused outbound requests, PDUs rejected by
// the pipeline and requests refused at X-Matrix authentication, each with its reason and no secrets.
describe.each(testDialects())('federation log lines, on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let roomId: string;
  const logB = capturedLogger();

  beforeAll(async () => {
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1'], {}, [undefined, logB.logger]);
    [A, B] = fleet.servers as [TestServer, TestServer];
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
    const created = await request(B.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: bob.accessToken, body: { preset: 'public_chat' } });
    roomId = created.body.room_id;
    const joined = await request(A.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} });
    expect(joined.status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it('a PDU the auth rules reject is logged with room, event id, origin, step and reason, without its content or signatures', async () => {
    // Alice (power 0) raises herself to 100 through an event her server signs and sends in a transaction.
    const tpl = await B.hs.services.rooms.joinTemplate(roomId, alice.userId, 'join');
    const version = getRoomVersion(tpl.room_version)!;
    const t = tpl.event as { prev_events: string[]; auth_events: string[]; depth: number };
    const forged = buildPdu(
      {
        room_id: roomId,
        sender: alice.userId,
        type: 'm.room.power_levels',
        state_key: '',
        content: { users: { [alice.userId]: 100 }, note: 'content-marker-7f3a' },
        prev_events: t.prev_events,
        auth_events: t.auth_events,
        depth: t.depth,
        origin_server_ts: Date.now(),
      },
      version,
      { serverName: A.serverName, key: A.hs.services.signingKey },
    );
    const res = await A.hs.services.federation.client.request<{ pdus: Record<string, { error?: string }> }>({
      destination: B.serverName,
      method: 'PUT',
      path: `/_matrix/federation/v1/send/obs-${Date.now()}`,
      body: { origin: A.serverName, origin_server_ts: Date.now(), pdus: [forged.pdu] },
    });
    // As Synapse: the transaction answers {} for a rejected PDU; the rejection is only logged.
    expect(res.pdus[forged.eventId]).toEqual({});

    const line = await eventually(async () => logB.lines.find((l) => l.msg === 'inbound PDU rejected' && l.eventId === forged.eventId), 'the rejection log line');
    expect(line).toMatchObject({ level: 30, step: 'auth', origin: A.serverName, roomId, eventId: forged.eventId });
    expect(typeof line.reason).toBe('string');
    expect(line.reason.length).toBeGreaterThan(0);
    const signature = Object.values(forged.pdu.signatures[A.serverName]!)[0]!;
    expect(logB.text()).not.toContain(signature);
    expect(logB.text()).not.toContain('content-marker-7f3a');
  });

  it('a request with a forged X-Matrix signature is refused and logged with the reason, not the signature', async () => {
    const keyId = A.hs.services.signingKey.keyId;
    const sig = 'Zm9yZ2VkIHNpZ25hdHVyZSBvZiBhIHJlcXVlc3QgdGhhdCBuZXZlciB3YXMgc2lnbmVk';
    const status = await forgedRequest(
      `${B.federationUrl}/_matrix/federation/v1/send/forged-1?secret_param=query-marker-91c`,
      `X-Matrix origin="${A.serverName}",destination="${B.serverName}",key="${keyId}",sig="${sig}"`,
      { origin: A.serverName, origin_server_ts: Date.now(), pdus: [] },
    );
    expect(status).toBe(401);
    const line = logB.lines.find((l) => l.msg === 'inbound federation request refused at authentication' && l.path === '/_matrix/federation/v1/send/forged-1');
    expect(line).toMatchObject({ level: 30, claimedOrigin: A.serverName, method: 'PUT', errcode: 'M_UNAUTHORIZED' });
    expect(line!.reason).toContain('Invalid signature');
    expect(logB.text()).not.toContain(sig);
    expect(logB.text()).not.toContain('query-marker-91c');

    expect(await forgedRequest(`${B.federationUrl}/_matrix/federation/v1/send/unsigned-1`, undefined, { pdus: [] })).toBe(401);
    const unsigned = logB.lines.find((l) => l.msg === 'inbound federation request refused at authentication' && l.path === '/_matrix/federation/v1/send/unsigned-1');
    expect(unsigned).toMatchObject({ level: 30, method: 'PUT', reason: 'Missing Authorization header' });
  });

  it('an outbound request refused by ip_range_blacklist is logged as such, without the access token', async () => {
    const logC = capturedLogger();
    // The default ip_range_blacklist refuses loopback, where B listens.
    const C = await startHomeserver({ dialect, config: { ip_range_whitelist: [] }, logger: logC.logger });
    try {
      const carol = await registerUser(C.baseUrl, 'carol');
      const res = await request(C.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}?access_token=${enc(carol.accessToken)}`, { body: {} });
      expect(res.status).toBe(502);
      const line = logC.lines.find((l) => l.msg === 'outbound federation request refused by ip_range_blacklist');
      expect(line).toMatchObject({ level: 30, destination: B.serverName, method: 'GET', reason: 'ip_range_blacklist', code: 'EOUTBOUNDBLOCKED' });
      expect(line!.path).toBe(`/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(carol.userId)}`);
      expect(logC.text()).not.toContain(carol.accessToken);
      expect(logB.text()).not.toContain(bob.accessToken);
    } finally {
      await C.close();
    }
  });
});
