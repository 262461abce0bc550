import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FederationRequestError } from '../../src/federation/client.js';
import { testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, type TestUser } from '../helpers/users.js';
import { eventually, startFleet, type Fleet } from './helpers.js';

// Remote media (spec: Server-Server API, "Content Repository"; Client-Server API, "Content repository"):
//   A localhost:<port>  — alice, who downloads
//   B 127.0.0.1:<port>  — bob, who uploads

interface Fetched {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json: any;
}

async function get(baseUrl: string, path: string, token?: string): Promise<Fetched> {
  const res = await fetch(baseUrl + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: any;
  if ((res.headers.get('content-type') ?? '').includes('application/json')) json = JSON.parse(bytes.toString('utf8'));
  return { status: res.status, headers: res.headers, bytes, json };
}

async function png(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: 10, g: 140, b: 90 } } }).png().toBuffer();
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** B asks A for its media on the federation endpoint; the status A answers with. */
async function federationStatus(B: TestServer, A: TestServer, path: string, query?: Record<string, string | number>): Promise<number> {
  try {
    const res = await B.hs.services.federation.client.requestStream({ destination: A.serverName, method: 'GET', path, query, accept: 'multipart/mixed' });
    for await (const _ of res.body) void _;
    return res.status;
  } catch (err) {
    if (err instanceof FederationRequestError && err.remoteStatus !== undefined) return err.remoteStatus;
    throw err;
  }
}

/** Counts A's outbound media fetches (the requests B receives for media). */
function countFetches(server: TestServer): { paths: string[] } {
  const client = server.hs.services.federation.client;
  const original = client.requestStream.bind(client);
  const seen = { paths: [] as string[] };
  client.requestStream = (req) => {
    seen.paths.push(req.path);
    return original(req);
  };
  return seen;
}

describe.each(testDialects())('remote media over federation on %s', (dialect) => {
  let fleet: Fleet;
  let A: TestServer, B: TestServer;
  let alice: TestUser, bob: TestUser;
  let fetches: { paths: string[] };

  async function bobUploads(bytes: Buffer, contentType: string, filename: string): Promise<string> {
    const res = await request(B.baseUrl, 'POST', `/_matrix/media/v3/upload?filename=${encodeURIComponent(filename)}`, {
      token: bob.accessToken,
      rawBody: bytes,
      headers: { 'content-type': contentType },
    });
    expect(res.status).toBe(200);
    const m = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(res.body.content_uri)!;
    expect(m[1]).toBe(B.serverName);
    return m[2]!;
  }

  beforeAll(async () => {
    fleet = await startFleet(dialect, ['localhost', '127.0.0.1'], { max_upload_size: 1024 * 1024, media_retention: { remote_media_lifetime: '1d' } });
    [A, B] = fleet.servers as [TestServer, TestServer];
    alice = await registerUser(A.baseUrl, 'alice');
    bob = await registerUser(B.baseUrl, 'bob');
    fetches = countFetches(A);
  }, 60_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it("alice on A downloads bob's image from B; the next downloads come from A's cache", async () => {
    const image = await png(400, 200);
    const id = await bobUploads(image, 'image/png', 'holiday photo.png');
    const path = `/_matrix/client/v1/media/download/${B.serverName}/${id}`;
    const before = fetches.paths.length;

    const first = await get(A.baseUrl, path, alice.accessToken);
    expect(first.status).toBe(200);
    expect(first.bytes.equals(image)).toBe(true);
    expect(first.headers.get('content-type')).toBe('image/png');
    expect(first.headers.get('content-disposition')).toBe('inline; filename="holiday photo.png"');
    expect(fetches.paths.slice(before)).toEqual([`/_matrix/federation/v1/media/download/${id}`]);

    const second = await get(A.baseUrl, path, alice.accessToken);
    expect(second.bytes.equals(image)).toBe(true);
    expect(fetches.paths.length).toBe(before + 1);
  });

  // enable_authenticated_media (on by default): remote media cached while it is on is not served on the legacy
  // unauthenticated paths, and those never make A fetch (as Synapse); what was cached while it was off stays.
  it('remote media cached under enable_authenticated_media is 404 on the legacy paths, which never fetch', async () => {
    const image = await png(300, 200);
    const id = await bobUploads(image, 'image/png', 'private.png');
    const legacy = [
      `/_matrix/media/v3/download/${B.serverName}/${id}`,
      `/_matrix/media/r0/download/${B.serverName}/${id}`,
      `/_matrix/media/v3/thumbnail/${B.serverName}/${id}?width=32&height=32&method=crop`,
    ];
    const before = fetches.paths.length;
    for (const p of legacy) expect((await get(A.baseUrl, p)).status, p).toBe(404);
    expect(fetches.paths.length).toBe(before);
    expect((await get(A.baseUrl, `/_matrix/client/v1/media/download/${B.serverName}/${id}`, alice.accessToken)).status).toBe(200);
    expect(fetches.paths.length).toBe(before + 1);
    for (const p of legacy) {
      const res = await get(A.baseUrl, p);
      expect(res.status, p).toBe(404);
      expect(res.json.errcode).toBe('M_NOT_FOUND');
    }
    // As an item cached before the setting existed.
    await A.hs.services.db.knex('remote_media_cache').where({ media_origin: B.serverName, media_id: id }).update({ authenticated: false });
    const old = await get(A.baseUrl, legacy[0]!);
    expect(old.status).toBe(200);
    expect(old.bytes.equals(image)).toBe(true);
    expect((await get(A.baseUrl, legacy[2]!)).status).toBe(200);
    expect(fetches.paths.length).toBe(before + 1);
  });

  it('many clients asking at once for the same uncached media cause one fetch', async () => {
    const bytes = Buffer.from('a document, '.repeat(5000));
    const id = await bobUploads(bytes, 'application/pdf', 'report.pdf');
    const before = fetches.paths.length;
    const results = await Promise.all(
      Array.from({ length: 5 }, () => get(A.baseUrl, `/_matrix/client/v1/media/download/${B.serverName}/${id}`, alice.accessToken)),
    );
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.bytes.equals(bytes)).toBe(true);
      expect(r.headers.get('content-disposition')).toBe('attachment; filename="report.pdf"');
    }
    expect(fetches.paths.length).toBe(before + 1);
  });

  it('thumbnails of remote media are made on A from the cached original', async () => {
    const image = await png(1000, 500);
    const id = await bobUploads(image, 'image/png', 'wide.png');
    const thumb = await get(A.baseUrl, `/_matrix/client/v1/media/thumbnail/${B.serverName}/${id}?width=32&height=32&method=crop`, alice.accessToken);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/png');
    const meta = await sharp(thumb.bytes).metadata();
    expect({ width: meta.width, height: meta.height }).toEqual({ width: 32, height: 32 });
    const scaled = await get(A.baseUrl, `/_matrix/client/v1/media/thumbnail/${B.serverName}/${id}?width=320&height=240&method=scale`, alice.accessToken);
    expect(scaled.status).toBe(200);
    expect((await sharp(scaled.bytes).metadata()).width).toBe(320);
  });

  it('unknown remote media is 404 M_NOT_FOUND; allow_remote=false does not fetch; an unreachable server is 502', async () => {
    const unknown = await get(A.baseUrl, `/_matrix/client/v1/media/download/${B.serverName}/doesNotExistOnB`, alice.accessToken);
    expect(unknown.status).toBe(404);
    expect(unknown.json.errcode).toBe('M_NOT_FOUND');
    const unknownThumb = await get(A.baseUrl, `/_matrix/client/v1/media/thumbnail/${B.serverName}/doesNotExistOnB?width=32&height=32`, alice.accessToken);
    expect(unknownThumb.status).toBe(404);

    const id = await bobUploads(Buffer.from('only on B'), 'text/plain', 'note.txt');
    const before = fetches.paths.length;
    const local = await get(A.baseUrl, `/_matrix/media/v3/download/${B.serverName}/${id}?allow_remote=false`);
    expect(local.status).toBe(404);
    expect(local.json.errcode).toBe('M_NOT_FOUND');
    expect(fetches.paths.length).toBe(before);

    const nowhere = await get(A.baseUrl, `/_matrix/client/v1/media/download/127.0.0.1:1/someMediaId`, alice.accessToken);
    expect(nowhere.status).toBe(502);
    expect(nowhere.json.errcode).toBe('M_UNKNOWN');
  });

  it('refuses remote media larger than max_upload_size with 502 M_TOO_LARGE and keeps no partial file', async () => {
    // Larger than the 1 MiB limit both servers share: stored on B directly, as an older, larger limit would have.
    const big = await B.hs.services.media.store.writeTemp(Buffer.alloc(1536 * 1024, 0x5a));
    const mxc = await B.hs.services.media.upload(bob.userId, big, 'application/octet-stream', 'big.bin');
    const id = mxc.split('/').pop()!;
    const res = await get(A.baseUrl, `/_matrix/client/v1/media/download/${B.serverName}/${id}`, alice.accessToken);
    expect(res.status).toBe(502);
    expect(res.json.errcode).toBe('M_TOO_LARGE');
    expect(await A.hs.services.db.knex('remote_media_cache').where({ media_id: id }).first()).toBeUndefined();
    const tmp = join(A.dir, 'media', 'tmp');
    expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
  });

  it('falls back to the legacy download endpoint when the remote does not know the federation one', async () => {
    const id = await bobUploads(Buffer.from('legacy bytes'), 'text/plain', 'old.txt');
    // A server from before v1.11 has no authenticated media: its legacy download serves the item.
    await B.hs.services.db.knex('media').where({ media_id: id }).update({ authenticated: false });
    const client = A.hs.services.federation.client;
    const counting = client.requestStream;
    // B answers as a server from before v1.11 would: the federation media endpoint is unrecognised.
    client.requestStream = async (req) => {
      if (req.path.startsWith('/_matrix/federation/v1/media/')) {
        throw new FederationRequestError(req.destination, 'http', 'HTTP 404 M_UNRECOGNIZED', 404, 'M_UNRECOGNIZED');
      }
      return counting(req);
    };
    try {
      const res = await get(A.baseUrl, `/_matrix/client/v1/media/download/${B.serverName}/${id}`, alice.accessToken);
      expect(res.status).toBe(200);
      expect(res.bytes.toString()).toBe('legacy bytes');
      expect(res.headers.get('content-disposition')).toBe('inline; filename="old.txt"');
      expect(fetches.paths.at(-1)).toBe(`/_matrix/media/v3/download/${encodeURIComponent(B.serverName)}/${id}`);
    } finally {
      client.requestStream = counting;
    }
  });

  it('cached remote media unused for remote_media_lifetime is deleted, and fetched again when asked for', async () => {
    const bytes = Buffer.from('short-lived in the cache');
    const id = await bobUploads(bytes, 'text/plain', 'cache.txt');
    const path = `/_matrix/client/v1/media/download/${B.serverName}/${id}`;
    expect((await get(A.baseUrl, path, alice.accessToken)).status).toBe(200);
    const before = fetches.paths.length;
    const purged = await A.hs.services.media.purgeExpired(Date.now() + 2 * 86_400_000);
    expect(purged).toBeGreaterThanOrEqual(1);
    expect(await A.hs.services.db.knex('remote_media_cache').where({ media_id: id }).first()).toBeUndefined();
    const again = await get(A.baseUrl, path, alice.accessToken);
    expect(again.bytes.equals(bytes)).toBe(true);
    expect(fetches.paths.length).toBe(before + 1);
    // B's own copy is local media, which remote_media_lifetime does not touch.
    await B.hs.services.media.purgeExpired(Date.now() + 2 * 86_400_000);
    expect((await get(B.baseUrl, path, bob.accessToken)).status).toBe(200);
  });

  it("B fetches A's media on the federation endpoint: signed, multipart/mixed with {} metadata and the bytes", async () => {
    const bytes = Buffer.from('--not-a-boundary\r\nhello from A\r\n');
    const up = await request(A.baseUrl, 'POST', '/_matrix/media/v3/upload?filename=a.txt', {
      token: alice.accessToken,
      rawBody: bytes,
      headers: { 'content-type': 'text/plain' },
    });
    const id = /\/([A-Za-z0-9_-]+)$/.exec(up.body.content_uri)![1]!;

    const res = await B.hs.services.federation.client.requestStream({
      destination: A.serverName,
      method: 'GET',
      path: `/_matrix/federation/v1/media/download/${id}`,
      accept: 'multipart/mixed',
    });
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c);
    const body = Buffer.concat(chunks);
    expect(res.status).toBe(200);
    const ct = String(res.headers['content-type']);
    const boundary = /^multipart\/mixed; boundary=(.+)$/.exec(ct)![1]!;
    expect(Number(res.headers['content-length'])).toBe(body.length);
    // Split by hand (independent of the parser under test): preamble-free, two parts, then the close delimiter.
    const text = body.toString('latin1');
    const parts = text.split(`--${boundary}`);
    expect(parts[0]).toBe('');
    expect(parts[3]).toBe('--\r\n');
    expect(parts).toHaveLength(4);
    const [metaHead, metaBody] = parts[1]!.split('\r\n\r\n');
    expect(metaHead!.toLowerCase()).toContain('content-type: application/json');
    expect(JSON.parse(metaBody!.replace(/\r\n$/, ''))).toEqual({});
    const mediaPart = parts[2]!;
    const split = mediaPart.indexOf('\r\n\r\n');
    expect(mediaPart.slice(0, split).toLowerCase()).toContain('content-type: text/plain');
    expect(Buffer.from(mediaPart.slice(split + 4, -2), 'latin1').equals(bytes)).toBe(true);

    const thumbMissing = await B.hs.services.federation.client
      .requestStream({ destination: A.serverName, method: 'GET', path: '/_matrix/federation/v1/media/download/nosuchmedia', accept: 'multipart/mixed' })
      .catch((e: unknown) => e);
    expect(thumbMissing).toBeInstanceOf(FederationRequestError);
    expect((thumbMissing as FederationRequestError).remoteStatus).toBe(404);
    expect((thumbMissing as FederationRequestError).remoteErrcode).toBe('M_NOT_FOUND');

    // Without an X-Matrix signature the endpoint is closed.
    const unsigned = await new Promise<number>((resolve, reject) => {
      httpsGet(`${A.federationUrl}/_matrix/federation/v1/media/download/${id}`, { rejectUnauthorized: false }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      }).on('error', reject);
    });
    expect(unsigned).toBe(401);
  });

  it("B's thumbnail of A's image on the federation endpoint", async () => {
    const image = await png(300, 300);
    const up = await request(A.baseUrl, 'POST', '/_matrix/media/v3/upload', { token: alice.accessToken, rawBody: image, headers: { 'content-type': 'image/png' } });
    const id = /\/([A-Za-z0-9_-]+)$/.exec(up.body.content_uri)![1]!;
    // B's users get it through B's client API, which fetches it from A.
    const thumb = await get(B.baseUrl, `/_matrix/client/v1/media/thumbnail/${A.serverName}/${id}?width=96&height=96&method=crop`, bob.accessToken);
    expect(thumb.status).toBe(200);
    expect((await sharp(thumb.bytes).metadata()).width).toBe(96);
    const res = await B.hs.services.federation.client.requestStream({
      destination: A.serverName,
      method: 'GET',
      path: `/_matrix/federation/v1/media/thumbnail/${id}`,
      query: { width: 32, height: 32, method: 'crop' },
      accept: 'multipart/mixed',
    });
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c);
    expect(String(res.headers['content-type'])).toMatch(/^multipart\/mixed; boundary=/);
    expect(Buffer.concat(chunks).toString('latin1')).toContain('Content-Type: image/png');
  });

  // Issue 13: deactivation with erase: true deletes every file the user uploaded, thumbnails included.
  it('erasing a user deletes their media files and thumbnails; every media path answers 404', async () => {
    const carol = await registerUser(A.baseUrl, 'carol');
    const image = await png(640, 320);
    const up = await request(A.baseUrl, 'POST', '/_matrix/media/v3/upload', { token: carol.accessToken, rawBody: image, headers: { 'content-type': 'image/png' } });
    const id = /\/([A-Za-z0-9_-]+)$/.exec(up.body.content_uri)![1]!;
    const pending = await request(A.baseUrl, 'POST', '/_matrix/media/v1/create', { token: carol.accessToken, body: {} });
    const pendingId = /\/([A-Za-z0-9_-]+)$/.exec(pending.body.content_uri)![1]!;
    const kept = await request(A.baseUrl, 'POST', '/_matrix/media/v3/upload', { token: alice.accessToken, rawBody: Buffer.from('alice keeps this'), headers: { 'content-type': 'text/plain' } });
    const keptId = /\/([A-Za-z0-9_-]+)$/.exec(kept.body.content_uri)![1]!;
    // As media uploaded before enable_authenticated_media: the legacy paths serve it until the erasure.
    await A.hs.services.db.knex('media').whereIn('media_id', [id, keptId]).update({ authenticated: false });

    const paths = [
      `/_matrix/media/v3/download/${A.serverName}/${id}`,
      `/_matrix/media/r0/download/${A.serverName}/${id}/photo.png`,
      `/_matrix/media/v3/thumbnail/${A.serverName}/${id}?width=32&height=32&method=crop`,
      `/_matrix/media/r0/thumbnail/${A.serverName}/${id}?width=32&height=32&method=scale`,
      `/_matrix/client/v1/media/download/${A.serverName}/${id}`,
      `/_matrix/client/v1/media/thumbnail/${A.serverName}/${id}?width=32&height=32&method=crop`,
    ];
    for (const path of paths) expect((await get(A.baseUrl, path, alice.accessToken)).status, path).toBe(200);
    expect(await federationStatus(B, A, `/_matrix/federation/v1/media/download/${id}`)).toBe(200);
    expect(await federationStatus(B, A, `/_matrix/federation/v1/media/thumbnail/${id}`, { width: 96, height: 96, method: 'crop' })).toBe(200);
    const store = A.hs.services.media.store;
    expect(existsSync(store.contentPath(id))).toBe(true);
    expect(filesUnder(store.thumbnailDir(id)).length).toBeGreaterThan(0);

    const auth = { type: 'm.login.password', identifier: { type: 'm.id.user', user: carol.userId }, password: carol.password };
    const res = await request(A.baseUrl, 'POST', '/_matrix/client/v3/account/deactivate', { token: carol.accessToken, body: { auth, erase: true } });
    expect(res.status).toBe(200);

    await eventually(async () => !existsSync(store.contentPath(id)), 'the erased file leaving the media store');
    const mediaDir = join(A.dir, 'media');
    expect(filesUnder(mediaDir).filter((f) => readFileSync(f).equals(image))).toEqual([]);
    expect(existsSync(store.thumbnailDir(id))).toBe(false);
    for (const path of paths) {
      const r = await get(A.baseUrl, path, alice.accessToken);
      expect(r.status, path).toBe(404);
      expect(r.json.errcode, path).toBe('M_NOT_FOUND');
    }
    expect(await federationStatus(B, A, `/_matrix/federation/v1/media/download/${id}`)).toBe(404);
    expect(await federationStatus(B, A, `/_matrix/federation/v1/media/thumbnail/${id}`, { width: 96, height: 96, method: 'crop' })).toBe(404);
    const db = A.hs.services.db.knex;
    expect(await db('media').whereIn('media_id', [id, pendingId])).toEqual([]);
    expect(await db('media_thumbnails').where({ media_id: id })).toEqual([]);
    // Another user's media stays.
    expect((await get(A.baseUrl, `/_matrix/media/v3/download/${A.serverName}/${keptId}`)).status).toBe(200);

    // The hook may run again after a crash: a second run finds nothing and fails nothing.
    const { eraseUserMedia } = await import('../../src/media/erasure.js');
    expect(await eraseUserMedia({ db: A.hs.services.db, store, logger: A.hs.services.logger }, carol.userId)).toBe(0);
  });
});
