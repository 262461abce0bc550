import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';
import { Filter } from 'matrix-js-sdk';

describe.each(testDialects())('filters on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  const enc = encodeURIComponent;

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('stores a filter and returns it as uploaded', async () => {
    const filter = {
      room: { timeline: { limit: 10, types: ['m.room.message'], not_senders: ['@spam:example.com'] }, state: { lazy_load_members: true } },
      presence: { types: ['m.presence'] },
      event_format: 'client',
      event_fields: ['type', 'content'],
      'org.example.extension': true,
    };
    const created = await request(server.baseUrl, 'POST', `/_matrix/client/v3/user/${enc(alice.userId)}/filter`, { token: alice.accessToken, body: filter });
    expect(created.status).toBe(200);
    expect(created.body.filter_id).toBeTypeOf('string');
    expect(created.body.filter_id.startsWith('{')).toBe(false);
    const got = await request(server.baseUrl, 'GET', `/_matrix/client/r0/user/${enc(alice.userId)}/filter/${created.body.filter_id}`, { token: alice.accessToken });
    expect(got.status).toBe(200);
    expect(got.body).toEqual(filter);
  });

  it('works with matrix-js-sdk createFilter/getFilter', async () => {
    const client = sdkClient(server.baseUrl, alice);
    const filter = await client.createFilter({ room: { timeline: { limit: 3 } } });
    expect(filter.filterId).toBeTypeOf('string');
    const again = await client.getFilter(alice.userId, filter.filterId!, false);
    expect(again.getDefinition()).toEqual({ room: { timeline: { limit: 3 } } });
    expect(again).toBeInstanceOf(Filter);
  });

  it('refuses filters for other users with 403', async () => {
    const created = await request(server.baseUrl, 'POST', `/_matrix/client/v3/user/${enc(alice.userId)}/filter`, { token: alice.accessToken, body: {} });
    const post = await request(server.baseUrl, 'POST', `/_matrix/client/v3/user/${enc(alice.userId)}/filter`, { token: bob.accessToken, body: {} });
    expect(post.status).toBe(403);
    expect(post.body.errcode).toBe('M_FORBIDDEN');
    const get = await request(server.baseUrl, 'GET', `/_matrix/client/v3/user/${enc(alice.userId)}/filter/${created.body.filter_id}`, { token: bob.accessToken });
    expect(get.status).toBe(403);
    // Bob's own namespace does not hold Alice's filter.
    const own = await request(server.baseUrl, 'GET', `/_matrix/client/v3/user/${enc(bob.userId)}/filter/${created.body.filter_id}`, { token: bob.accessToken });
    expect(own.status).toBe(404);
  });

  it('answers an unknown filter with 404 M_NOT_FOUND', async () => {
    for (const id of ['424242', 'not-a-number']) {
      const res = await request(server.baseUrl, 'GET', `/_matrix/client/v3/user/${enc(alice.userId)}/filter/${id}`, { token: alice.accessToken });
      expect(res.status).toBe(404);
      expect(res.body.errcode).toBe('M_NOT_FOUND');
    }
  });

  it('rejects badly shaped filters with M_BAD_JSON', async () => {
    for (const body of [
      { room: { timeline: { limit: 'ten' } } },
      { room: { rooms: 'not-a-list' } },
      { event_format: 'xml' },
      { account_data: { types: [1, 2] } },
      { room: { include_leave: 'yes' } },
    ]) {
      const res = await request(server.baseUrl, 'POST', `/_matrix/client/v3/user/${enc(alice.userId)}/filter`, { token: alice.accessToken, body });
      expect(res.status).toBe(400);
      expect(res.body.errcode).toBe('M_BAD_JSON');
    }
    const notJson = await request(server.baseUrl, 'POST', `/_matrix/client/v3/user/${enc(alice.userId)}/filter`, {
      token: alice.accessToken,
      rawBody: '{nope',
      headers: { 'content-type': 'application/json' },
    });
    expect(notJson.status).toBe(400);
    expect(notJson.body.errcode).toBe('M_NOT_JSON');
  });

  it('requires an access token', async () => {
    const res = await request(server.baseUrl, 'POST', `/_matrix/client/v3/user/${enc(alice.userId)}/filter`, { body: {} });
    expect(res.status).toBe(401);
    expect(res.body.errcode).toBe('M_MISSING_TOKEN');
  });
});
