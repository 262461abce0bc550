import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../../helpers/homeserver.js';
import { request } from '../../helpers/http.js';
import type { TestUser } from '../../helpers/users.js';
import { admin, enc, expectAdminOnly, makeAdmin, registerUser } from './helpers.js';

async function upload(server: TestServer, user: TestUser, text: string): Promise<string> {
  const res = await request(server.baseUrl, 'POST', '/_matrix/media/v3/upload?filename=f.txt', { token: user.accessToken, rawBody: text, headers: { 'content-type': 'text/plain' } });
  if (res.status !== 200) throw new Error(`upload: ${res.status}`);
  return (res.body.content_uri as string).split('/').pop()!;
}

function download(server: TestServer, user: TestUser, mediaId: string) {
  return request(server.baseUrl, 'GET', `/_matrix/client/v1/media/download/localhost/${mediaId}`, { token: user.accessToken });
}

// Synapse admin API: media, event reports, registration tokens, server version and background updates.
describe.each(testDialects())('Synapse admin API: media, reports, tokens, server, on %s', (dialect) => {
  let server: TestServer;
  let root: TestUser;
  let alice: TestUser;
  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    root = await makeAdmin(server);
    alice = await registerUser(server.baseUrl, 'alice');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('refuses every endpoint without a token (401) and to non-admins (403)', async () => {
    const u = enc(alice.userId);
    for (const [method, path, body] of [
      ['GET', `/v1/users/${u}/media`],
      ['DELETE', `/v1/users/${u}/media`],
      ['DELETE', '/v1/media/localhost/abc'],
      ['POST', '/v1/media/localhost/delete?before_ts=1', {}],
      ['POST', '/v1/media/quarantine/localhost/abc', {}],
      ['POST', '/v1/media/unquarantine/localhost/abc', {}],
      ['POST', '/v1/purge_media_cache?before_ts=1', {}],
      ['GET', '/v1/event_reports'],
      ['GET', '/v1/event_reports/1'],
      ['DELETE', '/v1/event_reports/1'],
      ['GET', '/v1/registration_tokens'],
      ['POST', '/v1/registration_tokens/new', {}],
      ['GET', '/v1/registration_tokens/abc'],
      ['PUT', '/v1/registration_tokens/abc', {}],
      ['DELETE', '/v1/registration_tokens/abc'],
      ['GET', '/v1/background_updates/status'],
    ] as Array<[string, string, unknown?]>) {
      await expectAdminOnly(server, alice, method, path, body);
    }
  });

  it('lists, quarantines and deletes media', async () => {
    const a = await upload(server, alice, 'first file');
    const b = await upload(server, alice, 'second, longer file');
    const list = await admin(server, 'GET', `/v1/users/${enc(alice.userId)}/media`, root.accessToken);
    expect(list.status).toBe(200);
    expect(list.body.total).toBe(2);
    expect(list.body.media.map((m: { media_id: string }) => m.media_id)).toEqual([a, b]);
    expect(list.body.media[0]).toMatchObject({ media_type: 'text/plain', media_length: 10, upload_name: 'f.txt', quarantined_by: null, safe_from_quarantine: false });
    const bySize = await admin(server, 'GET', `/v1/users/${enc(alice.userId)}/media?order_by=media_length&dir=b&limit=1`, root.accessToken);
    expect(bySize.body.media.map((m: { media_id: string }) => m.media_id)).toEqual([b]);
    expect(bySize.body.next_token).toBe(1);

    expect((await admin(server, 'POST', `/v1/media/quarantine/localhost/${a}`, root.accessToken, {})).status).toBe(200);
    expect((await download(server, alice, a)).status).toBe(404);
    expect((await admin(server, 'GET', `/v1/users/${enc(alice.userId)}/media`, root.accessToken)).body.media[0].quarantined_by).toBe(root.userId);
    expect((await admin(server, 'POST', `/v1/media/unquarantine/localhost/${a}`, root.accessToken, {})).status).toBe(200);
    expect((await download(server, alice, a)).status).toBe(200);
    expect((await admin(server, 'POST', '/v1/media/quarantine/localhost/nope', root.accessToken, {})).status).toBe(404);
    expect((await admin(server, 'POST', `/v1/media/quarantine/localhost/${enc('../etc')}`, root.accessToken, {})).status).toBe(400);

    const del = await admin(server, 'DELETE', `/v1/media/localhost/${a}`, root.accessToken);
    expect(del.body).toEqual({ deleted_media: [a], total: 1 });
    expect((await download(server, alice, a)).status).toBe(404);
    expect((await admin(server, 'DELETE', `/v1/media/localhost/${a}`, root.accessToken)).status).toBe(404);
    expect((await admin(server, 'DELETE', `/v1/media/elsewhere.example/${a}`, root.accessToken)).status).toBe(400);

    const c = await upload(server, alice, 'third');
    const byDate = await admin(server, 'POST', `/v1/media/localhost/delete?before_ts=${Date.now() + 60_000}`, root.accessToken, {});
    expect(byDate.body.deleted_media.sort()).toEqual([b, c].sort());
    expect((await download(server, alice, b)).status).toBe(404);
    expect((await admin(server, 'POST', '/v1/media/localhost/delete', root.accessToken, {})).status).toBe(400);

    const d = await upload(server, alice, 'fourth');
    const wiped = await admin(server, 'DELETE', `/v1/users/${enc(alice.userId)}/media`, root.accessToken);
    expect(wiped.body).toEqual({ deleted_media: [d], total: 1 });
    expect((await admin(server, 'GET', `/v1/users/${enc('@ghost:localhost')}/media`, root.accessToken)).status).toBe(404);
    expect((await admin(server, 'GET', `/v1/users/${enc(alice.userId)}/media?from=-1`, root.accessToken)).status).toBe(400);

    expect(await admin(server, 'POST', '/v1/purge_media_cache?before_ts=1', root.accessToken, {})).toMatchObject({ status: 200, body: { deleted: 0 } });
    expect((await admin(server, 'POST', '/v1/purge_media_cache', root.accessToken, {})).status).toBe(400);
    expect((await admin(server, 'POST', '/v1/purge_media_cache?before_ts=-5', root.accessToken, {})).status).toBe(400);
  });

  it('lists, shows and deletes event reports', async () => {
    const room = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: root.accessToken, body: { preset: 'public_chat', name: 'Reports' } });
    const roomId = room.body.room_id as string;
    await request(server.baseUrl, 'POST', `/_matrix/client/v3/join/${enc(roomId)}`, { token: alice.accessToken, body: {} });
    const sent = await request(server.baseUrl, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/r1`, {
      token: root.accessToken,
      body: { msgtype: 'm.text', body: 'bad words' },
    });
    const eventId = sent.body.event_id as string;
    const report = await request(server.baseUrl, 'POST', `/_matrix/client/v3/rooms/${enc(roomId)}/report/${enc(eventId)}`, {
      token: alice.accessToken,
      body: { reason: 'rude', score: -100 },
    });
    expect(report.status).toBe(200);
    const list = await admin(server, 'GET', '/v1/event_reports', root.accessToken);
    expect(list.body.total).toBe(1);
    const entry = list.body.event_reports[0];
    expect(entry).toMatchObject({ room_id: roomId, name: 'Reports', event_id: eventId, user_id: alice.userId, reason: 'rude', score: -100, sender: root.userId, canonical_alias: null });
    const one = await admin(server, 'GET', `/v1/event_reports/${entry.id}`, root.accessToken);
    expect(one.body.event_json).toMatchObject({ type: 'm.room.message', content: { body: 'bad words' } });
    expect((await admin(server, 'GET', `/v1/event_reports?room_id=${enc('!other:localhost')}`, root.accessToken)).body.total).toBe(0);
    expect((await admin(server, 'DELETE', `/v1/event_reports/${entry.id}`, root.accessToken)).status).toBe(200);
    expect((await admin(server, 'GET', `/v1/event_reports/${entry.id}`, root.accessToken)).status).toBe(404);
    expect((await admin(server, 'DELETE', `/v1/event_reports/${entry.id}`, root.accessToken)).status).toBe(404);
    expect((await admin(server, 'GET', '/v1/event_reports/abc', root.accessToken)).status).toBe(400);
    expect((await admin(server, 'GET', '/v1/event_reports/99999999999999999999', root.accessToken)).status).toBe(400);
    expect((await admin(server, 'GET', '/v1/event_reports?limit=-1', root.accessToken)).status).toBe(400);
  });

  it('creates, reads, updates and deletes registration tokens', async () => {
    const made = await admin(server, 'POST', '/v1/registration_tokens/new', root.accessToken, { token: 'invite-2026', uses_allowed: 2 });
    expect(made.body).toEqual({ token: 'invite-2026', uses_allowed: 2, pending: 0, completed: 0, expiry_time: null });
    const random = await admin(server, 'POST', '/v1/registration_tokens/new', root.accessToken, { length: 20 });
    expect(random.body.token).toMatch(/^[A-Za-z0-9._~-]{20}$/);
    expect((await admin(server, 'POST', '/v1/registration_tokens/new', root.accessToken, { token: 'invite-2026' })).status).toBe(400);
    for (const body of [{ token: 'bad token!' }, { uses_allowed: -1 }, { expiry_time: 1 }, { length: 65 }, { token: 'x'.repeat(65) }]) {
      expect((await admin(server, 'POST', '/v1/registration_tokens/new', root.accessToken, body)).status, JSON.stringify(body)).toBe(400);
    }
    expect((await admin(server, 'GET', '/v1/registration_tokens/invite-2026', root.accessToken)).body.uses_allowed).toBe(2);
    const updated = await admin(server, 'PUT', '/v1/registration_tokens/invite-2026', root.accessToken, { uses_allowed: 0 });
    expect(updated.body.uses_allowed).toBe(0);
    const valid = await admin(server, 'GET', '/v1/registration_tokens?valid=true', root.accessToken);
    expect(valid.body.registration_tokens.map((t: { token: string }) => t.token)).toEqual([random.body.token]);
    const invalid = await admin(server, 'GET', '/v1/registration_tokens?valid=false', root.accessToken);
    expect(invalid.body.registration_tokens.map((t: { token: string }) => t.token)).toEqual(['invite-2026']);
    expect((await admin(server, 'GET', '/v1/registration_tokens', root.accessToken)).body.registration_tokens).toHaveLength(2);
    expect((await admin(server, 'DELETE', '/v1/registration_tokens/invite-2026', root.accessToken)).status).toBe(200);
    expect((await admin(server, 'GET', '/v1/registration_tokens/invite-2026', root.accessToken)).status).toBe(404);
    expect((await admin(server, 'PUT', '/v1/registration_tokens/invite-2026', root.accessToken, {})).status).toBe(404);
    expect((await admin(server, 'DELETE', '/v1/registration_tokens/__proto__', root.accessToken)).status).toBe(404);
    expect((await admin(server, 'GET', '/v1/registration_tokens?valid=yes', root.accessToken)).status).toBe(400);
  });

  it('answers the server version (no token needed) and background update status', async () => {
    const version = await admin(server, 'GET', '/v1/server_version', undefined);
    expect(version).toMatchObject({ status: 200, body: { server_version: expect.any(String) } });
    expect(await admin(server, 'GET', '/v1/background_updates/status', root.accessToken)).toMatchObject({ status: 200, body: { enabled: true, current_updates: {} } });
  });
});
