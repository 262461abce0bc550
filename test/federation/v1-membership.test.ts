import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeBase64, encodeBase64 } from '../../src/crypto/base64.js';
import { canonicalJsonBytes } from '../../src/crypto/canonicalJson.js';
import { signBytes } from '../../src/crypto/signing.js';
import { FederationRequestError, type FederationRequest } from '../../src/federation/client.js';
import { formatXMatrixHeader, requestJson } from '../../src/federation/xmatrix.js';
import { buildPdu } from '../../src/rooms/eventFormat.js';
import { getRoomVersion } from '../../src/rooms/roomVersions.js';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, eventually, joinedMembers, membershipOf, startPair, sync, type Fleet } from './helpers.js';
import { httpsJson } from './tls.js';

/**
 * Makes `server`'s outbound requests whose path matches `refused` fail as a server without that endpoint
 * answers (404 M_UNRECOGNIZED), before they leave; the deprecated v1 forms still go out for real.
 */
function withoutEndpoint(server: TestServer, refused: RegExp, seen: FederationRequest[] = []): () => void {
  const client = server.hs.services.federation.client;
  const original = client.request;
  client.request = (async (req: FederationRequest) => {
    seen.push(req);
    if (refused.test(req.path)) throw new FederationRequestError(req.destination, 'http', 'HTTP 404', 404, 'M_UNRECOGNIZED');
    return original.call(client, req);
  }) as typeof client.request;
  return () => {
    client.request = original;
  };
}

// The deprecated v1 membership endpoints (Server-Server API: PUT /v1/invite, /v1/send_join, /v1/send_leave),
// inbound and as the fallback Synapse uses when a server does not know the v2 form:
//   A localhost:<port>  — alice      B 127.0.0.1:<port> — bob
describe.each(testDialects())('v1 membership endpoints on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;

  beforeAll(async () => {
    ({ fleet, A, B, alice, bob } = await startPair(dialect));
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  const createRoom = async (server: TestServer, user: TestUser, body: Record<string, unknown>) => {
    const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/createRoom', { token: user.accessToken, body });
    expect(res.status).toBe(200);
    return res.body.room_id as string;
  };

  it('an invite to a server without /v2/invite goes through /v1/invite (room versions 1 and 2), which answers [200, {event}]', async () => {
    const roomId = await createRoom(A, alice, { preset: 'private_chat', room_version: '2' });
    const seen: FederationRequest[] = [];
    const restore = withoutEndpoint(A, /\/v2\/invite\//, seen);
    try {
      const res = await api(A, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
      expect(res.status).toBe(200);
    } finally {
      restore();
    }
    expect(seen.map((r) => r.path.split('/').slice(0, 5).join('/'))).toContain('/_matrix/federation/v1/invite');
    expect(await membershipOf(A, alice, roomId, bob.userId)).toBe('invite');
    const s = await sync(B, bob);
    expect(s.rooms.invite[roomId]).toBeDefined();
  });

  it('an invite to a room of version 3+ is refused when the invitee server has no /v2/invite', async () => {
    const roomId = await createRoom(A, alice, { preset: 'private_chat', room_version: '10' });
    const restore = withoutEndpoint(A, /\/v2\/invite\//);
    try {
      const res = await api(A, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
      expect(res.status).toBe(400);
      expect(res.body.errcode).toBe('M_UNSUPPORTED_ROOM_VERSION');
    } finally {
      restore();
    }
  });

  it('a join through a server without /v2/send_join uses /v1/send_join and unwraps its [200, {...}] answer', async () => {
    const roomId = await createRoom(A, alice, { preset: 'public_chat' });
    const seen: FederationRequest[] = [];
    const restore = withoutEndpoint(B, /\/v2\/send_join\//, seen);
    try {
      const res = await api(B, bob, 'POST', `/join/${enc(roomId)}`, {});
      expect(res.status).toBe(200);
    } finally {
      restore();
    }
    expect(seen.some((r) => r.path.startsWith('/_matrix/federation/v1/send_join/'))).toBe(true);
    expect(await joinedMembers(B, bob, roomId)).toEqual([alice.userId, bob.userId].sort());
    await eventually(async () => (await membershipOf(A, alice, roomId, bob.userId)) === 'join', 'the join on A');
  });

  it('an invite rejected through a server without /v2/send_leave uses /v1/send_leave, which answers [200, {}]', async () => {
    const roomId = await createRoom(A, alice, { preset: 'private_chat' });
    expect((await api(A, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId })).status).toBe(200);
    const answers: unknown[] = [];
    const client = B.hs.services.federation.client;
    const restore = withoutEndpoint(B, /\/v2\/send_leave\//);
    const inner = client.request;
    client.request = (async (req: FederationRequest) => {
      const res = await inner.call(client, req);
      if (req.path.startsWith('/_matrix/federation/v1/send_leave/')) answers.push(res);
      return res;
    }) as typeof client.request;
    try {
      expect((await api(B, bob, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    } finally {
      client.request = inner;
      restore();
    }
    expect(answers).toEqual([[200, {}]]);
    expect(await membershipOf(A, alice, roomId, bob.userId)).toBe('leave');
  });

  it('/v1/send_join and /v1/send_leave refuse unsigned events with 403 M_FORBIDDEN, not 400', async () => {
    const roomId = await createRoom(A, alice, { preset: 'public_chat' });
    const client = B.hs.services.federation.client;
    for (const [make, send] of [
      ['make_join', 'send_join'],
      ['make_leave', 'send_leave'],
    ]) {
      const template = await client.get<{ event: Record<string, unknown> }>(A.serverName, `/_matrix/federation/v1/${make}/${enc(roomId)}/${enc(bob.userId)}`, { ver: ['10'] }).catch((e) => e);
      if (template instanceof FederationRequestError) {
        // make_leave for a user never in the room is refused by the auth rules; the unsigned leave needs no template.
        expect(make).toBe('make_leave');
      }
      const event = template instanceof FederationRequestError ? { type: 'm.room.member', room_id: roomId, sender: bob.userId, state_key: bob.userId, content: { membership: 'leave' } } : { ...template.event, origin_server_ts: Date.now() };
      const err = await client.put(A.serverName, `/_matrix/federation/v1/${send}/${enc(roomId)}/${enc('$x')}`, event).catch((e) => e);
      expect(err).toMatchObject({ remoteStatus: 403, remoteErrcode: 'M_FORBIDDEN' });
    }
  });

  it('a request whose body carries a float is authenticated, then refused with 400 M_BAD_JSON (room version 6)', async () => {
    const roomId = `!v6room:${B.serverName}`;
    const v6 = getRoomVersion('6')!;
    const { pdu, eventId } = buildPdu(
      {
        room_id: roomId,
        sender: bob.userId,
        type: 'm.room.member',
        state_key: alice.userId,
        content: { membership: 'invite' },
        prev_events: [],
        auth_events: [],
        depth: 1,
        origin_server_ts: Date.now(),
      },
      v6,
      { serverName: B.serverName, key: B.hs.services.signingKey, includeOrigin: true },
    );
    const body = { room_version: '6', event: { ...pdu, content: { membership: 'invite', bad_val: 1.1 } }, invite_room_state: [] };
    const uri = `/_matrix/federation/v2/invite/${enc(roomId)}/${enc(eventId)}`;
    const signable = requestJson({ method: 'PUT', uri, origin: B.serverName, destination: A.serverName, content: body });
    const sig = encodeBase64(signBytes(canonicalJsonBytes(signable, { allowFloats: true }), B.hs.services.signingKey));
    const authorization = formatXMatrixHeader({ origin: B.serverName, destination: A.serverName, key: B.hs.services.signingKey.keyId, sig });
    const ca = readFileSync(A.hs.services.config.federation_custom_ca_list![0]!, 'utf8');
    const res = await httpsJson(`${A.federationUrl}${uri}`, { ca, method: 'PUT', headers: { authorization }, body });
    expect(res.status).toBe(400);
    expect((res.body as { errcode: string }).errcode).toBe('M_BAD_JSON');
    expect(decodeBase64(sig).length).toBe(64);
  });

  it('a remote M_INCOMPATIBLE_ROOM_VERSION reaches the client with its room_version', () => {
    const err = new FederationRequestError('x.example', 'http', 'HTTP 400', 400, 'M_INCOMPATIBLE_ROOM_VERSION', 'y u no upgrade', 'sytest-room-ver');
    expect(err.forClient().toJSON()).toEqual({ errcode: 'M_INCOMPATIBLE_ROOM_VERSION', error: 'y u no upgrade', room_version: 'sytest-room-ver' });
  });

  it('an invite from a denied server is refused by the ACL before anything else; one for a room we are in needs no account lookup', async () => {
    const roomId = await createRoom(A, alice, { preset: 'public_chat' });
    expect((await api(B, bob, 'POST', `/join/${enc(roomId)}`, {})).status).toBe(200);
    // B is resident too: it builds the invite on its own head and asks A to countersign it.
    const invite = (target: string) => api(B, bob, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: target });
    const ghost = `@ghost:${A.serverName}`;
    // Inviting a local user B does not know about (an account on A that does not exist) is signed by A, as Synapse does.
    expect((await invite(ghost)).status).toBe(200);
    const bobServer = B.serverName.split(':')[0]!;
    expect((await api(A, alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.server_acl/`, { allow: ['*'], deny: [bobServer] })).status).toBe(200);
    await eventually(async () => (await request(B.baseUrl, 'GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.server_acl/`, { token: bob.accessToken, skipSpecCheck: true })).status === 200, 'the ACL on B');
    const again = await invite(`@ghost2:${A.serverName}`);
    expect(again.status).toBe(403);
    expect(again.body.error).not.toMatch(/not a user/);
  });

  it('make_join for a room all our users have left is 404 M_NOT_FOUND', async () => {
    const roomId = await createRoom(A, alice, { preset: 'public_chat' });
    const client = B.hs.services.federation.client;
    const path = `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(bob.userId)}`;
    expect(await client.get(A.serverName, path, { ver: ['10'] })).toMatchObject({ room_version: '10' });
    expect((await api(A, alice, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    await expect(client.get(A.serverName, path, { ver: ['10'] })).rejects.toMatchObject({ remoteStatus: 404, remoteErrcode: 'M_NOT_FOUND' });
  });
});
