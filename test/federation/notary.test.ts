import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, signJson, verifyJsonSignature, type SigningKey } from '../../src/crypto/signing.js';
import { freePort, startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { createTestCa, httpsJson, issueCert } from './tls.js';

// Skjól as a key notary (spec: Server-Server API, "Querying Keys Through Another Server") for an origin whose
// key answers the test controls: a plain HTTPS server on loopback that publishes what it is told to.
//   N localhost:<port>  — the notary (Skjól)
//   O 127.0.0.1:<port>  — the origin (the test's HTTPS server)
describe.each(testDialects())('key notary on %s', (dialect) => {
  let dir: string;
  let caPem: string;
  let N: TestServer;
  let origin: Server;
  let originName: string;
  /** What O answers to GET /_matrix/key/v2/server next; a number is an error status. */
  let answer: object | number = 400;
  let fetches = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skjol-notary-'));
    const ca = createTestCa(dir);
    caPem = readFileSync(ca.caPath, 'utf8');
    const oCert = issueCert(dir, 'o', ca);
    const oPort = await freePort();
    originName = `127.0.0.1:${oPort}`;
    origin = createServer({ cert: readFileSync(oCert.certificatePath), key: readFileSync(oCert.privateKeyPath) }, (req, res) => {
      if (!req.url?.startsWith('/_matrix/key/v2/server')) {
        res.writeHead(404).end();
        return;
      }
      fetches++;
      if (typeof answer === 'number') res.writeHead(answer, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
    await new Promise<void>((resolve) => origin.listen(oPort, '127.0.0.1', resolve));
    const nPort = await freePort();
    N = await startHomeserver({ dialect, serverName: `localhost:${nPort}`, tls: { ...issueCert(dir, 'n', ca), port: nPort }, config: { federation_custom_ca_list: [ca.caPath] } });
  }, 60_000);

  afterAll(async () => {
    await N?.close();
    await new Promise((resolve) => origin?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const keyResponse = (key: SigningKey, validUntilTs: number) =>
    signJson({ server_name: originName, valid_until_ts: validUntilTs, verify_keys: { [key.keyId]: { key: key.publicKey } }, old_verify_keys: {} }, originName, key);
  const query = (keyId: string, minimumValidUntilTs: number) =>
    httpsJson(`${N.federationUrl}/_matrix/key/v2/query`, {
      ca: caPem,
      method: 'POST',
      body: { server_keys: { [originName]: { [keyId]: { minimum_valid_until_ts: minimumValidUntilTs } } } },
    });

  it('answers the deprecated GET /_matrix/key/v2/query/{serverName}/{keyId}, signed by itself', async () => {
    const key = generateSigningKey('get0');
    answer = keyResponse(key, Date.now() + 3600_000);
    const res = await httpsJson(`${N.federationUrl}/_matrix/key/v2/query/${encodeURIComponent(originName)}/${encodeURIComponent(key.keyId)}`, { ca: caPem });
    expect(res.status).toBe(200);
    const entry = res.body.server_keys.find((k: { verify_keys: object }) => Object.hasOwn(k.verify_keys, key.keyId));
    expect(entry).toBeDefined();
    const nKey = N.hs.services.signingKey;
    expect(verifyJsonSignature(entry, N.serverName, nKey.keyId, nKey.publicKey)).toBe(true);
  });

  it('refetches when asked for a later validity (no refetch interval), and returns an expired key when the origin fails', async () => {
    const key = generateSigningKey('exp0');
    const expiry = Date.now() - 86400_000;
    answer = keyResponse(key, expiry);
    expect((await query(key.keyId, 0)).body.server_keys[0].verify_keys[key.keyId]).toBeDefined();
    const before = fetches;
    const second = await query(key.keyId, expiry + 1000);
    expect(fetches).toBe(before + 1);
    expect(second.body.server_keys[0]).toMatchObject({ server_name: originName, valid_until_ts: expiry });
    answer = 400;
    const third = await query(key.keyId, expiry + 1000);
    expect(fetches).toBe(before + 2);
    expect(third.body.server_keys[0]).toMatchObject({ server_name: originName, valid_until_ts: expiry, verify_keys: { [key.keyId]: { key: key.publicKey } } });
  });

  it('does not forget a key when the origin later answers without it', async () => {
    const key1 = generateSigningKey('one1');
    const key2 = generateSigningKey('two2');
    const expiry = Date.now() - 86400_000;
    answer = keyResponse(key1, expiry);
    expect((await query(key1.keyId, 0)).body.server_keys[0].verify_keys[key1.keyId]).toBeDefined();
    answer = keyResponse(key2, expiry + 1000);
    await query(key1.keyId, Date.now());
    answer = 400;
    const res = await query(key1.keyId, expiry);
    expect(res.body.server_keys).toHaveLength(1);
    expect(res.body.server_keys[0].verify_keys[key1.keyId]).toEqual({ key: key1.publicKey });
  });
});
