import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';

// Listener `resources` as Synapse: each listener serves only what it names, and /health answers on all.
describe.each(testDialects())('listeners and their resources, on %s', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  const urls: Record<'both' | 'federation' | 'client' | 'media' | 'metrics', string> = { both: '', federation: '', client: '', media: '', metrics: '' };

  beforeAll(async () => {
    server = await startHomeserver({ dialect, config: { enable_metrics: true } });
    alice = await registerUser(server.baseUrl, 'alice');
    const on = async (resources: Parameters<TestServer['hs']['listen']>[3]) => `http://127.0.0.1:${await server.hs.listen(0, '127.0.0.1', undefined, resources)}`;
    urls.both = server.baseUrl;
    urls.federation = await on({ resources: ['federation'] });
    urls.client = await on({ resources: ['client'] });
    urls.media = await on({ resources: ['media'] });
    urls.metrics = await on({ resources: ['metrics'] });
  }, 60_000);

  afterAll(async () => {
    await server?.close();
  });

  it('answers GET /health with 200 OK (text/plain) on every listener', async () => {
    for (const [name, url] of Object.entries(urls)) {
      const res = await fetch(`${url}/health`);
      expect({ name, status: res.status, type: res.headers.get('content-type'), body: await res.text() }).toEqual({ name, status: 200, type: 'text/plain', body: 'OK' });
    }
  });

  it('a federation-only listener refuses the client API (404 M_UNRECOGNIZED) and serves federation and keys', async () => {
    const versions = await request(urls.federation, 'GET', '/_matrix/client/versions', { skipSpecCheck: true });
    expect(versions.status).toBe(404);
    expect(versions.body.errcode).toBe('M_UNRECOGNIZED');
    const sync = await request(urls.federation, 'GET', '/_matrix/client/v3/sync', { token: alice.accessToken, skipSpecCheck: true });
    expect([sync.status, sync.body.errcode]).toEqual([404, 'M_UNRECOGNIZED']);
    const admin = await request(urls.federation, 'POST', '/_synapse/admin/v1/register', { body: {}, skipSpecCheck: true });
    expect([admin.status, admin.body.errcode]).toEqual([404, 'M_UNRECOGNIZED']);
    expect((await request(urls.federation, 'GET', '/_matrix/federation/v1/version')).status).toBe(200);
    const keys = await request(urls.federation, 'GET', '/_matrix/key/v2/server');
    expect(keys.status).toBe(200);
    expect(keys.body.server_name).toBe(server.serverName);
  });

  it('a client-only listener refuses federation and server keys, and serves the client API', async () => {
    const version = await request(urls.client, 'GET', '/_matrix/federation/v1/version', { skipSpecCheck: true });
    expect([version.status, version.body.errcode]).toEqual([404, 'M_UNRECOGNIZED']);
    const keys = await request(urls.client, 'GET', '/_matrix/key/v2/server', { skipSpecCheck: true });
    expect([keys.status, keys.body.errcode]).toEqual([404, 'M_UNRECOGNIZED']);
    const whoami = await request(urls.client, 'GET', '/_matrix/client/v3/account/whoami', { token: alice.accessToken });
    expect(whoami.body.user_id).toBe(alice.userId);
  });

  it('a media-only listener serves media (client v1 media included) and nothing else', async () => {
    const upload = await fetch(`${server.baseUrl}/_matrix/media/v3/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.accessToken}`, 'content-type': 'text/plain' },
      body: 'hello media listener',
    });
    const mxc = ((await upload.json()) as { content_uri: string }).content_uri.slice('mxc://'.length);
    const download = await fetch(`${urls.media}/_matrix/client/v1/media/download/${mxc}`, { headers: { authorization: `Bearer ${alice.accessToken}` } });
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('hello media listener');
    const config = await request(urls.media, 'GET', '/_matrix/client/v1/media/config', { token: alice.accessToken });
    expect(config.status).toBe(200);
    const whoami = await request(urls.media, 'GET', '/_matrix/client/v3/account/whoami', { token: alice.accessToken, skipSpecCheck: true });
    expect([whoami.status, whoami.body.errcode]).toEqual([404, 'M_UNRECOGNIZED']);
    const version = await request(urls.media, 'GET', '/_matrix/federation/v1/version', { skipSpecCheck: true });
    expect(version.status).toBe(404);
  });

  it('serves /_synapse/metrics only on a listener with the metrics resource', async () => {
    const scraped = await fetch(`${urls.metrics}/_synapse/metrics`);
    expect(scraped.status).toBe(200);
    expect(scraped.headers.get('content-type')).toMatch(/^text\/plain/);
    for (const url of [urls.both, urls.client, urls.federation]) {
      expect((await fetch(`${url}/_synapse/metrics`)).status).toBe(404);
    }
    const versions = await request(urls.metrics, 'GET', '/_matrix/client/versions', { skipSpecCheck: true });
    expect(versions.status).toBe(404);
  });
});
