import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, verifyJsonSignature } from '../../src/crypto/signing.js';
import { FederationClient, FederationRequestError } from '../../src/federation/client.js';
import { signRequest } from '../../src/federation/xmatrix.js';
import { freePort, startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { createTestCa, httpsJson, issueCert } from './tls.js';
import { OutboundPolicy } from '../../src/net/outboundPolicy.js';

const PROFILE = '/_matrix/federation/v1/query/profile';

async function federationError(p: Promise<unknown>): Promise<FederationRequestError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(FederationRequestError);
    return err as FederationRequestError;
  }
  throw new Error('expected the request to fail');
}

// Four servers on loopback, each with its own name and TLS certificate:
//   A localhost:<port>  trusts B as its key notary
//   B 127.0.0.1:<port>  publishes an old key too
//   C localhost:<port>  federates with A only (federation_domain_whitelist)
//   R 127.0.0.1:<port>  presents a certificate from a CA nobody trusts
// Everyone trusts the test CA through federation_custom_ca_list; certificate verification stays on.
describe.each(testDialects())('federation keys and request authentication on %s', (dialect) => {
  let dir: string;
  let caPem: string;
  let A: TestServer, B: TestServer, C: TestServer, R: TestServer;
  let bob: TestUser;
  const oldKey = generateSigningKey('old1');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-fed-'));
    const ca = createTestCa(dir);
    caPem = readFileSync(ca.caPath, 'utf8');
    const rogueCa = createTestCa(dir, 'rogue-ca');
    const [pA, pB, pC, pR] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const common = { federation_custom_ca_list: [ca.caPath] };
    const start = (name: string, port: number, cert: ReturnType<typeof issueCert>, config: Record<string, unknown> = {}) =>
      startHomeserver({ dialect, serverName: name, tls: { ...cert, port }, config: { ...common, ...config } });
    B = await start(`127.0.0.1:${pB}`, pB, issueCert(dir, 'b', ca), {
      old_signing_keys: { [oldKey.keyId]: { key: oldKey.publicKey, expired_ts: 1_600_000_000_000 } },
    });
    C = await start(`localhost:${pC}`, pC, issueCert(dir, 'c', ca), { federation_domain_whitelist: [`localhost:${pA}`] });
    R = await start(`127.0.0.1:${pR}`, pR, issueCert(dir, 'r', rogueCa));
    const bKey = B.hs.services.signingKey;
    A = await start(`localhost:${pA}`, pA, issueCert(dir, 'a', ca), {
      trusted_key_servers: [{ server_name: B.serverName, verify_keys: { [bKey.keyId]: bKey.publicKey } }],
    });
    bob = await registerUser(B.baseUrl, 'bob');
    await request(B.baseUrl, 'PUT', `/_matrix/client/v3/profile/${encodeURIComponent(bob.userId)}/displayname`, {
      token: bob.accessToken,
      body: { displayname: 'Bob on B' },
    });
  });

  afterAll(async () => {
    await Promise.all([A, B, C, R].filter(Boolean).map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves GET /_matrix/federation/v1/version over HTTPS without authentication', async () => {
    const res = await httpsJson(`${B.federationUrl}/_matrix/federation/v1/version`, { ca: caPem });
    expect(res.status).toBe(200);
    expect(res.body.server).toEqual({ name: 'Skjól', version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
  });

  it('publishes its keys, self-signed, with old keys and valid_until_ts a day ahead', async () => {
    const res = await httpsJson(`${B.federationUrl}/_matrix/key/v2/server`, { ca: caPem });
    expect(res.status).toBe(200);
    const key = B.hs.services.signingKey;
    expect(res.body).toMatchObject({
      server_name: B.serverName,
      verify_keys: { [key.keyId]: { key: key.publicKey } },
      old_verify_keys: { [oldKey.keyId]: { key: oldKey.publicKey, expired_ts: 1_600_000_000_000 } },
    });
    expect(Math.abs(res.body.valid_until_ts - (Date.now() + 86400_000))).toBeLessThan(60_000);
    expect(verifyJsonSignature(res.body, B.serverName, key.keyId, key.publicKey)).toBe(true);
  });

  it("A fetches B's keys over HTTPS through discovery, stores them, and checks old keys by time", async () => {
    const store = A.hs.services.federation.keyStore;
    const key = B.hs.services.signingKey;
    expect(await store.verifyKeyFor(B.serverName, key.keyId)).toBe(key.publicKey);
    const row = await A.hs.services.db.knex('server_keys').where({ server_name: B.serverName, key_id: key.keyId }).first();
    expect(row.verify_key).toBe(key.publicKey);
    // The old key verifies what was signed before it expired, and nothing after.
    expect(await store.verifyKeyFor(B.serverName, oldKey.keyId, 1_500_000_000_000)).toBe(oldKey.publicKey);
    expect(await store.verifyKeyFor(B.serverName, oldKey.keyId, Date.now())).toBeUndefined();
  });

  it("A's signed request to B's X-Matrix endpoint succeeds (B fetches A's keys from localhost:<port>)", async () => {
    const client = A.hs.services.federation.client;
    expect(await client.get(B.serverName, PROFILE, { user_id: bob.userId })).toEqual({ displayname: 'Bob on B' });
    expect(await client.get(B.serverName, PROFILE, { user_id: bob.userId, field: 'avatar_url' })).toEqual({});
    const missing = await federationError(client.get(B.serverName, PROFILE, { user_id: `@nobody:${B.serverName}` }));
    expect(missing).toMatchObject({ remoteStatus: 404, remoteErrcode: 'M_NOT_FOUND', status: 502, errcode: 'M_UNKNOWN' });
    // What a client would see names no remote text.
    expect(missing.toJSON()).toEqual({ errcode: 'M_UNKNOWN', error: `Failed to talk to ${B.serverName}` });
    const foreign = await federationError(client.get(B.serverName, PROFILE, { user_id: '@x:elsewhere.example' }));
    expect(foreign.remoteStatus).toBe(400);
  });

  it("GET /profile on A for B's user asks B (federation query), 404 for users B does not have", async () => {
    const path = `/_matrix/client/v3/profile/${encodeURIComponent(bob.userId)}`;
    expect(await request(A.baseUrl, 'GET', path)).toMatchObject({ status: 200, body: { displayname: 'Bob on B' } });
    expect(await request(A.baseUrl, 'GET', `${path}/displayname`)).toMatchObject({ status: 200, body: { displayname: 'Bob on B' } });
    expect(await request(A.baseUrl, 'GET', `${path}/avatar_url`)).toMatchObject({ status: 200, body: {} });
    const nobody = await request(A.baseUrl, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent(`@nobody:${B.serverName}`)}`);
    expect(nobody).toMatchObject({ status: 404, body: { errcode: 'M_NOT_FOUND' } });
  });

  it('B refuses requests without a valid X-Matrix signature', async () => {
    const aKey = A.hs.services.signingKey;
    const uri = `${PROFILE}?user_id=${encodeURIComponent(bob.userId)}`;
    const call = (authorization?: string, path = uri) =>
      httpsJson(`${B.federationUrl}${path}`, { ca: caPem, headers: authorization ? { authorization } : {} });
    const signed = (over: { destination?: string; uri?: string; key?: typeof aKey } = {}) =>
      signRequest({ method: 'GET', uri: over.uri ?? uri, origin: A.serverName, destination: over.destination ?? B.serverName }, over.key ?? aKey);

    const good = await call(signed());
    expect(good.status).toBe(200);

    const cases: Array<[string, string | undefined, string?]> = [
      ['no Authorization header', undefined],
      ['an access-token scheme', 'Bearer abc'],
      ['a forged signature under A’s key ID', signed({ key: { ...generateSigningKey(aKey.version) } })],
      ['a signature for another destination', signed({ destination: C.serverName })],
      ['an unknown key ID', signed({ key: generateSigningKey('nosuchkey') })],
      ['a signature over another URI', signed({ uri: `${PROFILE}?user_id=${encodeURIComponent('@eve:' + B.serverName)}` })],
    ];
    for (const [name, header] of cases) {
      const res = await call(header);
      expect({ name, status: res.status, errcode: res.body.errcode }).toEqual({ name, status: 401, errcode: 'M_UNAUTHORIZED' });
    }
    // An origin that is no server name (a non-numeric port, spaces) is a malformed header: 400, as on Synapse.
    for (const bad of ['not a name', `${A.serverName.split(':')[0]}:http`]) {
      const res = await call(signed().replace(`origin="${A.serverName}"`, `origin="${bad}"`));
      expect({ bad, status: res.status, errcode: res.body.errcode }).toEqual({ bad, status: 400, errcode: 'M_UNAUTHORIZED' });
    }
  });

  it('federation_domain_whitelist: C answers A, refuses B with 403, and never calls out to B', async () => {
    const carol = await registerUser(C.baseUrl, 'carol');
    expect(await A.hs.services.federation.client.get(C.serverName, PROFILE, { user_id: carol.userId })).toEqual({ displayname: 'carol' });
    const refused = await federationError(B.hs.services.federation.client.get(C.serverName, PROFILE, { user_id: carol.userId }));
    expect(refused).toMatchObject({ remoteStatus: 403, remoteErrcode: 'M_FORBIDDEN' });
    const denied = await federationError(C.hs.services.federation.client.get(B.serverName, '/_matrix/federation/v1/version'));
    expect(denied).toMatchObject({ failure: 'denied', status: 403, errcode: 'M_FORBIDDEN' });
  });

  it("B as notary returns A's keys signed by A and by B (GET and POST)", async () => {
    const aKey = A.hs.services.signingKey;
    const bKey = B.hs.services.signingKey;
    const get = await httpsJson(`${B.federationUrl}/_matrix/key/v2/query/${encodeURIComponent(A.serverName)}`, { ca: caPem });
    expect(get.status).toBe(200);
    expect(get.body.server_keys).toHaveLength(1);
    const keys = get.body.server_keys[0];
    expect(keys).toMatchObject({ server_name: A.serverName, verify_keys: { [aKey.keyId]: { key: aKey.publicKey } } });
    expect(verifyJsonSignature(keys, A.serverName, aKey.keyId, aKey.publicKey)).toBe(true);
    expect(verifyJsonSignature(keys, B.serverName, bKey.keyId, bKey.publicKey)).toBe(true);

    const post = await httpsJson(`${B.federationUrl}/_matrix/key/v2/query`, {
      ca: caPem,
      method: 'POST',
      body: {
        server_keys: {
          [A.serverName]: { [aKey.keyId]: { minimum_valid_until_ts: Date.now() } },
          [B.serverName]: {},
          'localhost:1': {},
        },
      },
    });
    expect(post.status).toBe(200);
    const names = post.body.server_keys.map((k: { server_name: string }) => k.server_name).sort();
    expect(names).toEqual([A.serverName, B.serverName].sort());
    for (const k of post.body.server_keys) expect(verifyJsonSignature(k, B.serverName, bKey.keyId, bKey.publicKey)).toBe(true);

    const empty = await httpsJson(`${B.federationUrl}/_matrix/key/v2/query`, { ca: caPem, method: 'POST', body: { server_keys: {} } });
    expect(empty.body).toEqual({ server_keys: [] });
    const bad = await httpsJson(`${B.federationUrl}/_matrix/key/v2/query/x?minimum_valid_until_ts=soon`, { ca: caPem });
    expect(bad).toMatchObject({ status: 400, body: { errcode: 'M_INVALID_PARAM' } });
  });

  it("A gets C's keys through its trusted key server B, checking B's signature and C's", async () => {
    const cKey = C.hs.services.signingKey;
    expect(await A.hs.services.federation.keyStore.verifyKeyFor(C.serverName, cKey.keyId)).toBe(cKey.publicKey);
    const row = await A.hs.services.db.knex('server_key_responses').where({ server_name: C.serverName, key_id: cKey.keyId }).first();
    expect(row.from_server).toBe(B.serverName);
    const stored = JSON.parse(row.key_json);
    expect(Object.keys(stored.signatures)).toEqual([C.serverName]);
  });

  it('keeps certificate verification on: a server with an untrusted certificate is unreachable', async () => {
    const rKey = R.hs.services.signingKey;
    expect(await A.hs.services.federation.keyStore.verifyKeyFor(R.serverName, rKey.keyId)).toBeUndefined();
    const err = await federationError(A.hs.services.federation.client.get(R.serverName, '/_matrix/federation/v1/version'));
    expect(err.failure).toBe('unreachable');
    // The same request succeeds without verification: it was the certificate that failed.
    const insecure = new FederationClient({
      serverName: A.serverName,
      signingKey: A.hs.services.signingKey,
      logger: pino({ level: 'silent' }),
      tls: { verifyCertificates: false, ca: undefined, minVersion: 'TLSv1.2' },
      resolve: (name) => A.hs.services.federation.resolver.resolve(name),
      isAllowed: () => true,
      outbound: new OutboundPolicy({ whitelist: ['127.0.0.0/8'] }),
    });
    try {
      expect(await insecure.get(R.serverName, '/_matrix/federation/v1/version')).toMatchObject({ server: { name: 'Skjól' } });
    } finally {
      insecure.close();
    }
  });
});
