import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// Legacy POST forms of send and redact without a txnId, which Synapse serves and SyTest drives.
// The spec only defines the PUT forms, so these responses have no schema to check against.
describe.each(testDialects())('send and redact without a txnId on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let roomId: string;
  const room = () => `/rooms/${encodeURIComponent(roomId)}`;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    const created = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    roomId = created.body.room_id;
  });
  afterAll(async () => {
    await server?.close();
  });

  const eventBody = async (eventId: string) => {
    const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3${room()}/event/${encodeURIComponent(eventId)}`, { token: alice.accessToken });
    expect(res.status).toBe(200);
    return res.body;
  };

  it.each(['v3', 'r0'])('POST /%s/rooms/{roomId}/send/{eventType} sends a new event on every call', async (version) => {
    const path = `/_matrix/client/${version}${room()}/send/m.room.message`;
    const content = { msgtype: 'm.text', body: `hello over ${version}` };
    const first = await request(server.baseUrl, 'POST', path, { token: alice.accessToken, body: content, skipSpecCheck: true });
    const second = await request(server.baseUrl, 'POST', path, { token: alice.accessToken, body: content, skipSpecCheck: true });
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(first.body.event_id).not.toBe(second.body.event_id);
    expect((await eventBody(first.body.event_id)).content).toEqual(content);
  });

  it.each(['v3', 'r0'])('POST /%s/rooms/{roomId}/redact/{eventId} redacts the event', async (version) => {
    const sent = await request(server.baseUrl, 'PUT', `/_matrix/client/v3${room()}/send/m.room.message/t-${version}`, {
      token: alice.accessToken,
      body: { msgtype: 'm.text', body: 'secret' },
    });
    const redacted = await request(server.baseUrl, 'POST', `/_matrix/client/${version}${room()}/redact/${encodeURIComponent(sent.body.event_id)}`, {
      token: alice.accessToken,
      body: { reason: 'oops' },
      skipSpecCheck: true,
    });
    expect(redacted.status).toBe(200);
    expect(redacted.body.event_id).toMatch(/^\$/);
    const ev = await eventBody(sent.body.event_id);
    expect(ev.content).toEqual({});
    expect(ev.unsigned.redacted_because.content.reason).toBe('oops');
  });

  it('answers a spec error, not a 500, for a POST send to a room the user is not in', async () => {
    const bob = await registerUser(server.baseUrl, 'bob');
    const res = await request(server.baseUrl, 'POST', `/_matrix/client/v3${room()}/send/m.room.message`, {
      token: bob.accessToken,
      body: { msgtype: 'm.text', body: 'x' },
      skipSpecCheck: true,
    });
    expect(res.status).toBe(403);
    expect(res.body.errcode).toBe('M_FORBIDDEN');
  });
});
