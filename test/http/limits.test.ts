import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

describe('rate limits and request size limits', () => {
  let server: TestServer;
  let alice: TestUser;

  beforeAll(async () => {
    server = await startHomeserver({
      config: {
        rc_enabled: true,
        rc_message: { per_second: 0.5, burst_count: 3 },
        rc_registration: { per_second: 100, burst_count: 100 },
        max_request_body_size: 100_000,
      },
    });
    alice = await registerUser(server.baseUrl, 'alice');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('answers a burst beyond the limit with 429 M_LIMIT_EXCEEDED and retry_after_ms, without storing the event', async () => {
    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: alice.accessToken, body: {} });
    expect(room.status).toBe(200);
    const statuses: number[] = [];
    let limited: { errcode: string; retry_after_ms: number } | undefined;
    for (let i = 0; i < 4; i++) {
      const res = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(room.body.room_id)}/send/m.room.message/rl${i}`, {
        token: alice.accessToken,
        body: { msgtype: 'm.text', body: `n${i}` },
      });
      statuses.push(res.status);
      if (res.status === 429) limited = res.body;
    }
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(limited?.errcode).toBe('M_LIMIT_EXCEEDED');
    expect(limited?.retry_after_ms).toBeGreaterThan(0);
    const messages = await request(server.baseUrl, 'GET', `/_matrix/client/v3/rooms/${encodeURIComponent(room.body.room_id)}/messages?dir=b&limit=50`, {
      token: alice.accessToken,
    });
    const sent = messages.body.chunk.filter((e: { type: string }) => e.type === 'm.room.message');
    expect(sent.length).toBe(statuses.filter((s) => s === 200).length);
  });

  it('refuses a body above max_request_body_size with 413 M_TOO_LARGE', async () => {
    const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/user/' + encodeURIComponent(alice.userId) + '/filter', {
      token: alice.accessToken,
      rawBody: JSON.stringify({ room: { timeline: { types: ['x'.repeat(200_000)] } } }),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(413);
    expect(res.body.errcode).toBe('M_TOO_LARGE');
  });
});
