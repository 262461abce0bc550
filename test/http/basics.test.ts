import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';

describe.each(testDialects())('HTTP basics on %s', (dialect) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startHomeserver({ dialect });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('lists supported spec versions', async () => {
    const res = await request(server.baseUrl, 'GET', '/_matrix/client/versions');
    expect(res.status).toBe(200);
    expect(res.body.versions).toContain('v1.1');
  });

  it('answers unknown paths with 404 M_UNRECOGNIZED', async () => {
    const res = await request(server.baseUrl, 'GET', '/_matrix/client/v3/no/such/thing');
    expect(res.status).toBe(404);
    expect(res.body.errcode).toBe('M_UNRECOGNIZED');
  });

  it('answers a known path with the wrong method with 405 M_UNRECOGNIZED', async () => {
    const res = await request(server.baseUrl, 'DELETE', '/_matrix/client/versions');
    expect(res.status).toBe(405);
    expect(res.body.errcode).toBe('M_UNRECOGNIZED');
  });

  it('answers CORS preflight for browser clients', async () => {
    const res = await request(server.baseUrl, 'OPTIONS', '/_matrix/client/v3/login');
    expect(res.status).toBeLessThan(300);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/Authorization/i);
  });

  it('rejects a body with invalid UTF-8 as M_NOT_JSON', async () => {
    const raw = Buffer.concat([Buffer.from('{"username":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    const res = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', { rawBody: raw, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(res.body.errcode).toBe('M_NOT_JSON');
  });

  // SyTest (like Synapse and Dendrite) expects exactly `application/json`, without a charset parameter.
  it('sends plain application/json on success and on every kind of error', async () => {
    const ok = await request(server.baseUrl, 'GET', '/_matrix/client/versions');
    const unknownPath = await request(server.baseUrl, 'GET', '/_matrix/client/v3/no/such/thing');
    const noToken = await request(server.baseUrl, 'GET', '/_matrix/client/v3/account/whoami');
    const notJson = await request(server.baseUrl, 'POST', '/_matrix/client/v3/register', { rawBody: Buffer.from('{'), headers: { 'content-type': 'application/json' } });
    const serverKeys = await request(server.baseUrl, 'GET', '/_matrix/key/v2/server');
    expect([ok.status, unknownPath.status, noToken.status, notJson.status, serverKeys.status]).toEqual([200, 404, 401, 400, 200]);
    for (const res of [ok, unknownPath, noToken, notJson, serverKeys]) expect(res.headers.get('content-type')).toBe('application/json');
    expect(noToken.body.errcode).toBe('M_MISSING_TOKEN');
  });

  it('serves .well-known/matrix/client with the base url', async () => {
    const res = await request(server.baseUrl, 'GET', '/.well-known/matrix/client');
    expect(res.status).toBe(200);
    expect(res.body['m.homeserver'].base_url).toMatch(/^https?:\/\//);
  });
});
