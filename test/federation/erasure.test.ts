import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { api, enc, eventually, messageBodies, send, startPair, type Fleet } from './helpers.js';

// Issue 13: a second Skjól server sees none of an erased user's content, name or avatar.
//   A localhost:<port>  — alice (room creator), erin (erased)
//   B 127.0.0.1:<port>  — bob (member before the erasure), carl (joins after)
describe.each(testDialects())('erasure seen over federation on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser, erin: TestUser;
  const marker = `zqxfed${randomBytes(5).toString('hex')}`;
  const nameMarker = `Qzfedname${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
    erin = await registerUser(A.baseUrl, 'erin');
  }, 60_000);
  afterAll(async () => {
    await fleet?.close();
  });

  it('an existing remote member, a later remote joiner and the remote server itself see no content, name or avatar', async () => {
    const roomId = (await api(A, alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id as string;
    expect((await api(A, erin, 'PUT', `/profile/${enc(erin.userId)}/displayname`, { displayname: `Erin ${nameMarker}` })).status).toBe(200);
    expect((await api(A, erin, 'PUT', `/profile/${enc(erin.userId)}/avatar_url`, { avatar_url: 'mxc://localhost/erinface' })).status).toBe(200);
    expect((await api(A, erin, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect((await api(B, bob, 'POST', `/join/${enc(roomId)}?server_name=${enc(A.serverName)}`, {})).status).toBe(200);
    const first = await send(A, erin, roomId, `hello ${marker} one`);
    await send(A, erin, roomId, `second ${marker} two`);
    await eventually(async () => (await messageBodies(B, bob, roomId)).filter((b) => b?.includes(marker)).length === 2, 'the messages on B');

    const admin = await registerUser(A.baseUrl, 'root');
    await A.hs.services.db.knex('users').where({ user_id: admin.userId }).update({ admin: true });
    const res = await request(A.baseUrl, 'POST', `/_synapse/admin/v1/deactivate/${enc(erin.userId)}`, { token: admin.accessToken, body: { erase: true } });
    expect(res.status).toBe(200);

    // B applied the redactions and the leave: bob's reads hold nothing of erin's any more.
    const shows = (value: unknown) => {
      const text = JSON.stringify(value);
      return text.includes(marker) || text.includes(nameMarker) || text.includes('mxc://localhost/erinface');
    };
    await eventually(async () => !shows((await api(B, bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100`)).body), 'the content gone on B');
    await eventually(async () => !shows((await api(B, bob, 'GET', `/rooms/${enc(roomId)}/members`)).body), 'the name gone from B\'s members');
    expect(shows((await api(B, bob, 'GET', '/sync')).body)).toBe(false);
    expect(shows((await api(B, bob, 'GET', `/rooms/${enc(roomId)}/state`)).body)).toBe(false);
    expect((await api(B, bob, 'GET', `/rooms/${enc(roomId)}/event/${enc(first)}`)).body.content).toEqual({});

    // A later joiner on B.
    const carl = await registerUser(B.baseUrl, 'carl');
    expect((await api(B, carl, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect(shows((await api(B, carl, 'GET', '/sync')).body)).toBe(false);
    expect(shows((await api(B, carl, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=100`)).body)).toBe(false);

    // What A serves to other servers: the stored form is the redacted one.
    const fetched = await B.hs.services.federation.client.get(A.serverName, `/_matrix/federation/v1/event/${enc(first)}`);
    expect(shows(fetched)).toBe(false);
  });

  it("prunes the erased user's events still queued for a server that is down", async () => {
    const roomId = (await api(A, alice, 'POST', '/createRoom', { preset: 'public_chat' })).body.room_id as string;
    const dora = await registerUser(A.baseUrl, 'dora');
    expect((await api(A, dora, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    expect((await api(B, bob, 'POST', `/join/${enc(roomId)}?server_name=${enc(A.serverName)}`, {})).status).toBe(200);
    await B.stop();
    await send(A, dora, roomId, `queued ${marker} three`);
    const outbox = () => A.hs.services.db.knex('federation_outbox').select('payload');
    await eventually(async () => (await outbox()).some((r: { payload: string }) => r.payload.includes(marker)), 'the message queued for B');
    const admin = await registerUser(A.baseUrl, 'root2');
    await A.hs.services.db.knex('users').where({ user_id: admin.userId }).update({ admin: true });
    const res = await request(A.baseUrl, 'POST', `/_synapse/admin/v1/deactivate/${enc(dora.userId)}`, { token: admin.accessToken, body: { erase: true } });
    expect(res.status).toBe(200);
    const rows = await outbox();
    expect(rows.some((r: { payload: string }) => r.payload.includes(marker))).toBe(false);
    // The event still goes to B, in its redacted form (B's DAG needs it).
    expect(rows.some((r: { payload: string }) => r.payload.includes(dora.userId))).toBe(true);
  });
});
