import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHomeserver, testDialects, type TestServer } from '../helpers/homeserver.js';
import { request } from '../helpers/http.js';
import { registerUser, sdkClient, type TestUser } from '../helpers/users.js';
import { parseDuration } from '../../src/config/schema.js';
import { contentDisposition } from '../../src/media/headers.js';
import { selectThumbnailSize } from '../../src/media/thumbnailer.js';

// Content repository end to end: legacy /_matrix/media/{v3,r0} and authenticated /_matrix/client/v1/media.

const MAX_UPLOAD = 200 * 1024;

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

async function upload(
  baseUrl: string,
  token: string | undefined,
  bytes: Buffer,
  opts: { contentType?: string; filename?: string; prefix?: string } = {},
): Promise<{ status: number; body: any }> {
  const qs = opts.filename !== undefined ? `?filename=${encodeURIComponent(opts.filename)}` : '';
  const headers: Record<string, string> = {};
  if (opts.contentType) headers['content-type'] = opts.contentType;
  const res = await request(baseUrl, 'POST', `${opts.prefix ?? '/_matrix/media/v3'}/upload${qs}`, { token, rawBody: bytes, headers });
  return { status: res.status, body: res.body };
}

function mxcParts(uri: string): { server: string; id: string } {
  const m = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(uri);
  if (!m) throw new Error(`not an mxc URI: ${uri}`);
  return { server: m[1]!, id: m[2]! };
}

async function png(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: 200, g: 40, b: 90 } } }).png().toBuffer();
}

async function dims(bytes: Buffer): Promise<{ width: number; height: number; format: string }> {
  const m = await sharp(bytes).metadata();
  return { width: m.width!, height: m.height!, format: m.format! };
}

describe.each(testDialects())('content repository (%s)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    // The legacy unauthenticated paths are exercised here, so media is stored as with the setting off (as
    // before it existed); the default, authenticated-only media, has its own block below.
    server = await startHomeserver({ dialect, config: { max_upload_size: MAX_UPLOAD, enable_authenticated_media: false } });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('uploads and downloads bytes, content type and filename on the legacy and authenticated paths', async () => {
    const body = Buffer.from('hello, media\n');
    const up = await upload(server.baseUrl, alice.accessToken, body, { contentType: 'text/plain', filename: 'hello.txt' });
    expect(up.status).toBe(200);
    const { server: host, id } = mxcParts(up.body.content_uri);
    expect(host).toBe(server.serverName);

    for (const [path, token] of [
      [`/_matrix/media/v3/download/${host}/${id}`, undefined],
      [`/_matrix/media/r0/download/${host}/${id}`, undefined],
      [`/_matrix/client/v1/media/download/${host}/${id}`, alice.accessToken],
      [`/_matrix/client/v1/media/download/${host}/${id}`, bob.accessToken],
    ] as const) {
      const res = await get(server.baseUrl, path, token);
      expect(res.status, path).toBe(200);
      expect(res.bytes.equals(body)).toBe(true);
      expect(res.headers.get('content-type')).toBe('text/plain');
      expect(res.headers.get('content-disposition')).toBe('inline; filename="hello.txt"');
      expect(res.headers.get('content-security-policy')).toMatch(/^sandbox; default-src 'none'/);
      expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }

    // A file name in the path wins, non-ASCII names are RFC 5987-encoded.
    const named = await get(server.baseUrl, `/_matrix/client/v1/media/download/${host}/${id}/${encodeURIComponent('résumé (1).txt')}`, alice.accessToken);
    expect(named.status).toBe(200);
    expect(named.headers.get('content-disposition')).toBe("inline; filename*=utf-8''r%C3%A9sum%C3%A9%20%281%29.txt");
  });

  it('requires a token for the authenticated download and for uploads', async () => {
    const up = await upload(server.baseUrl, alice.accessToken, Buffer.from('x'));
    const { id } = mxcParts(up.body.content_uri);
    const res = await get(server.baseUrl, `/_matrix/client/v1/media/download/${server.serverName}/${id}`);
    expect(res.status).toBe(401);
    expect(res.json.errcode).toBe('M_MISSING_TOKEN');
    const bad = await get(server.baseUrl, `/_matrix/client/v1/media/download/${server.serverName}/${id}`, 'nonsense');
    expect(bad.status).toBe(401);
    expect(bad.json.errcode).toBe('M_UNKNOWN_TOKEN');
    const anon = await upload(server.baseUrl, undefined, Buffer.from('x'));
    expect(anon.status).toBe(401);
    expect(anon.body.errcode).toBe('M_MISSING_TOKEN');
  });

  it('defaults the content type to application/octet-stream and serves unsafe types as attachments', async () => {
    const raw = await upload(server.baseUrl, alice.accessToken, Buffer.from([0, 1, 2, 3]), { prefix: '/_matrix/media/r0' });
    expect(raw.status).toBe(200);
    const a = await get(server.baseUrl, `/_matrix/media/v3/download/${server.serverName}/${mxcParts(raw.body.content_uri).id}`);
    expect(a.headers.get('content-type')).toBe('application/octet-stream');
    expect(a.headers.get('content-disposition')).toBe('attachment');
    expect([...a.bytes]).toEqual([0, 1, 2, 3]);

    const html = await upload(server.baseUrl, alice.accessToken, Buffer.from('<script>alert(1)</script>'), { contentType: 'text/html', filename: 'x.html' });
    const h = await get(server.baseUrl, `/_matrix/media/v3/download/${server.serverName}/${mxcParts(html.body.content_uri).id}`);
    expect(h.headers.get('content-type')).toBe('text/html');
    expect(h.headers.get('content-disposition')).toBe('attachment; filename="x.html"');
  });

  it('refuses uploads above max_upload_size with 413 M_TOO_LARGE', async () => {
    const res = await upload(server.baseUrl, alice.accessToken, Buffer.alloc(MAX_UPLOAD + 1, 7), { contentType: 'application/octet-stream' });
    expect(res.status).toBe(413);
    expect(res.body.errcode).toBe('M_TOO_LARGE');
    const ok = await upload(server.baseUrl, alice.accessToken, Buffer.alloc(MAX_UPLOAD, 7), { contentType: 'application/octet-stream' });
    expect(ok.status).toBe(200);
  });

  it('answers 404 M_NOT_FOUND for unknown media, remote servers and malformed ids', async () => {
    for (const path of [
      `/_matrix/media/v3/download/${server.serverName}/doesNotExistAtAll`,
      `/_matrix/client/v1/media/download/${server.serverName}/doesNotExistAtAll`,
      // Remote media is fetched over federation (test/federation/media.test.ts) unless allow_remote=false.
      `/_matrix/media/v3/download/remote.example/abcdefghijkl?allow_remote=false`,
      `/_matrix/client/v1/media/thumbnail/${server.serverName}/doesNotExistAtAll?width=32&height=32`,
      `/_matrix/client/v1/media/download/${server.serverName}/${encodeURIComponent('../../etc')}`,
    ]) {
      const res = await get(server.baseUrl, path, alice.accessToken);
      expect(res.status, path).toBe(404);
      expect(res.json.errcode).toBe('M_NOT_FOUND');
    }
  });

  it('creates an mxc URI, lets only its creator upload once, and wakes a waiting download', async () => {
    const created = await request(server.baseUrl, 'POST', '/_matrix/media/v1/create', { token: alice.accessToken, body: {} });
    expect(created.status).toBe(200);
    expect(created.body.unused_expires_at).toBeGreaterThan(Date.now());
    const { server: host, id } = mxcParts(created.body.content_uri);

    const early = await get(server.baseUrl, `/_matrix/client/v1/media/download/${host}/${id}?timeout_ms=0`, alice.accessToken);
    expect(early.status).toBe(504);
    expect(early.json.errcode).toBe('M_NOT_YET_UPLOADED');

    const waiting = get(server.baseUrl, `/_matrix/client/v1/media/download/${host}/${id}?timeout_ms=15000`, bob.accessToken);

    const notMine = await request(server.baseUrl, 'PUT', `/_matrix/media/v3/upload/${host}/${id}`, {
      token: bob.accessToken,
      rawBody: Buffer.from('bob'),
      headers: { 'content-type': 'text/plain' },
    });
    expect(notMine.status).toBe(403);
    expect(notMine.body.errcode).toBe('M_FORBIDDEN');

    const body = Buffer.from('{"later":true}');
    const put = await request(server.baseUrl, 'PUT', `/_matrix/media/v3/upload/${host}/${id}?filename=later.json`, {
      token: alice.accessToken,
      rawBody: body,
      headers: { 'content-type': 'application/json' },
    });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({});

    const got = await waiting;
    expect(got.status).toBe(200);
    expect(got.bytes.equals(body)).toBe(true);
    expect(got.headers.get('content-disposition')).toBe('inline; filename="later.json"');

    const again = await request(server.baseUrl, 'PUT', `/_matrix/media/v3/upload/${host}/${id}`, {
      token: alice.accessToken,
      rawBody: Buffer.from('again'),
    });
    expect(again.status).toBe(409);
    expect(again.body.errcode).toBe('M_CANNOT_OVERWRITE_MEDIA');
    const after = await get(server.baseUrl, `/_matrix/media/v3/download/${host}/${id}`);
    expect(after.bytes.equals(body)).toBe(true);

    const unknown = await request(server.baseUrl, 'PUT', `/_matrix/media/v3/upload/${host}/neverCreatedThisOne`, {
      token: alice.accessToken,
      rawBody: Buffer.from('x'),
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.errcode).toBe('M_NOT_FOUND');

    // A media id from a direct upload was never "created": it cannot be overwritten either.
    const direct = await upload(server.baseUrl, alice.accessToken, Buffer.from('direct'));
    const overwrite = await request(server.baseUrl, 'PUT', `/_matrix/media/v3/upload/${host}/${mxcParts(direct.body.content_uri).id}`, {
      token: alice.accessToken,
      rawBody: Buffer.from('x'),
    });
    expect(overwrite.status).toBe(409);
  });

  it('limits the number of pending async uploads per user', async () => {
    const carol = await registerUser(server.baseUrl, 'carol');
    for (let i = 0; i < 5; i++) {
      const ok = await request(server.baseUrl, 'POST', '/_matrix/media/v1/create', { token: carol.accessToken, body: {} });
      expect(ok.status).toBe(200);
    }
    const limited = await request(server.baseUrl, 'POST', '/_matrix/media/v1/create', { token: carol.accessToken, body: {} });
    expect(limited.status).toBe(429);
    expect(limited.body.errcode).toBe('M_LIMIT_EXCEEDED');
  });

  it('thumbnails a PNG: crop fills the box, scale keeps the aspect ratio, results are cached', async () => {
    const original = await png(1000, 500);
    const up = await upload(server.baseUrl, alice.accessToken, original, { contentType: 'image/png', filename: 'wide.png' });
    const { server: host, id } = mxcParts(up.body.content_uri);

    const crop = await get(server.baseUrl, `/_matrix/media/v3/thumbnail/${host}/${id}?width=32&height=32&method=crop`);
    expect(crop.status).toBe(200);
    expect(crop.headers.get('content-type')).toBe('image/png');
    expect(crop.headers.get('content-disposition')).toBe('inline; filename="thumbnail.png"');
    expect(await dims(crop.bytes)).toEqual({ width: 32, height: 32, format: 'png' });

    const scale = await get(server.baseUrl, `/_matrix/client/v1/media/thumbnail/${host}/${id}?width=320&height=240&method=scale`, alice.accessToken);
    expect(scale.status).toBe(200);
    expect(await dims(scale.bytes)).toEqual({ width: 320, height: 160, format: 'png' });

    // Not a configured size: the smallest configured size of that method covering the box is used.
    const between = await get(server.baseUrl, `/_matrix/client/v1/media/thumbnail/${host}/${id}?width=100&height=100&method=scale`, alice.accessToken);
    expect(await dims(between.bytes)).toMatchObject({ width: 320, height: 160 });
    const crop64 = await get(server.baseUrl, `/_matrix/client/v1/media/thumbnail/${host}/${id}?width=64&height=64&method=crop`, alice.accessToken);
    expect(await dims(crop64.bytes)).toMatchObject({ width: 96, height: 96 });

    const again = await get(server.baseUrl, `/_matrix/media/v3/thumbnail/${host}/${id}?width=32&height=32&method=crop`);
    expect(again.bytes.equals(crop.bytes)).toBe(true);
    const rows = await server.hs.services.db.knex('media_thumbnails').where({ media_id: id }).orderBy(['width', 'method']);
    expect(rows.map((r: { width: number; height: number; method: string }) => `${r.width}x${r.height}-${r.method}`)).toEqual([
      '32x32-crop',
      '96x96-crop',
      '320x240-scale',
    ]);
    expect(existsSync(join(server.dir, 'media', 'local_thumbnails'))).toBe(true);
  });

  it('serves the original when it is already smaller than the box, and JPEG thumbnails of JPEGs', async () => {
    const small = await png(20, 10);
    const up = await upload(server.baseUrl, alice.accessToken, small, { contentType: 'image/png' });
    const { id } = mxcParts(up.body.content_uri);
    const t = await get(server.baseUrl, `/_matrix/client/v1/media/thumbnail/${server.serverName}/${id}?width=320&height=240`, alice.accessToken);
    expect(t.status).toBe(200);
    expect(t.bytes.equals(small)).toBe(true);

    const jpeg = await sharp({ create: { width: 640, height: 640, channels: 3, background: '#336699' } }).jpeg().toBuffer();
    const j = await upload(server.baseUrl, alice.accessToken, jpeg, { contentType: 'image/jpeg' });
    const jt = await get(server.baseUrl, `/_matrix/client/v1/media/thumbnail/${server.serverName}/${mxcParts(j.body.content_uri).id}?width=96&height=96&method=crop`, alice.accessToken);
    expect(jt.headers.get('content-type')).toBe('image/jpeg');
    expect(await dims(jt.bytes)).toEqual({ width: 96, height: 96, format: 'jpeg' });
  });

  it('keeps animation only when asked to (animated=true gives an animated WebP)', async () => {
    const frames = await Promise.all(['#f00', '#0f0', '#00f'].map((c) => sharp({ create: { width: 200, height: 100, channels: 3, background: c } }).png().toBuffer()));
    const gif = await sharp(frames, { join: { animated: true } }).gif().toBuffer();
    const up = await upload(server.baseUrl, alice.accessToken, gif, { contentType: 'image/gif' });
    const base = `/_matrix/client/v1/media/thumbnail/${server.serverName}/${mxcParts(up.body.content_uri).id}?width=32&height=32&method=crop`;

    const animated = await get(server.baseUrl, `${base}&animated=true`, alice.accessToken);
    expect(animated.headers.get('content-type')).toBe('image/webp');
    const meta = await sharp(animated.bytes).metadata();
    expect({ pages: meta.pages, width: meta.width, height: meta.pageHeight ?? meta.height }).toEqual({ pages: 3, width: 32, height: 32 });

    const still = await get(server.baseUrl, base, alice.accessToken);
    expect(still.headers.get('content-type')).toBe('image/png');
    expect((await sharp(still.bytes).metadata()).pages ?? 1).toBe(1);
  });

  it('lets exactly one of two concurrent uploads to a created mxc URI win', async () => {
    const created = await request(server.baseUrl, 'POST', '/_matrix/media/v1/create', { token: alice.accessToken, body: {} });
    const { server: host, id } = mxcParts(created.body.content_uri);
    const put = (text: string) =>
      request(server.baseUrl, 'PUT', `/_matrix/media/v3/upload/${host}/${id}`, { token: alice.accessToken, rawBody: Buffer.from(text) });
    const [a, b] = await Promise.all([put('first'), put('second')]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const winner = a.status === 200 ? 'first' : 'second';
    const dl = await get(server.baseUrl, `/_matrix/media/v3/download/${host}/${id}`);
    expect(dl.bytes.toString()).toBe(winner);
  });

  it('refuses to thumbnail non-images and bad parameters with 400', async () => {
    const text = await upload(server.baseUrl, alice.accessToken, Buffer.from('not an image'), { contentType: 'text/plain' });
    const { id } = mxcParts(text.body.content_uri);
    const base = `/_matrix/client/v1/media/thumbnail/${server.serverName}/${id}`;
    const notImage = await get(server.baseUrl, `${base}?width=32&height=32`, alice.accessToken);
    expect(notImage.status).toBe(400);

    const fake = await upload(server.baseUrl, alice.accessToken, Buffer.from('not a png at all'), { contentType: 'image/png' });
    const fakeThumb = await get(server.baseUrl, `/_matrix/client/v1/media/thumbnail/${server.serverName}/${mxcParts(fake.body.content_uri).id}?width=32&height=32`, alice.accessToken);
    expect(fakeThumb.status).toBe(400);

    const img = await upload(server.baseUrl, alice.accessToken, await png(50, 50), { contentType: 'image/png' });
    const imgBase = `/_matrix/client/v1/media/thumbnail/${server.serverName}/${mxcParts(img.body.content_uri).id}`;
    const missing = await get(server.baseUrl, `${imgBase}?width=32`, alice.accessToken);
    expect(missing.status).toBe(400);
    expect(missing.json.errcode).toBe('M_MISSING_PARAM');
    for (const q of ['width=-1&height=32', 'width=0&height=32', 'width=1.5&height=32', 'width=32&height=32&method=stretch']) {
      const bad = await get(server.baseUrl, `${imgBase}?${q}`, alice.accessToken);
      expect(bad.status, q).toBe(400);
      expect(bad.json.errcode).toBe('M_INVALID_PARAM');
    }
  });

  it('reports the upload limit on both config endpoints and has no URL previews', async () => {
    for (const path of ['/_matrix/media/v3/config', '/_matrix/client/v1/media/config']) {
      const res = await request(server.baseUrl, 'GET', path, { token: alice.accessToken });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ 'm.upload.size': MAX_UPLOAD });
      const anon = await request(server.baseUrl, 'GET', path);
      expect(anon.status).toBe(401);
    }
    const preview = await request(server.baseUrl, 'GET', '/_matrix/client/v1/media/preview_url?url=https%3A%2F%2Fexample.org', { token: alice.accessToken });
    expect(preview.status).toBe(404);
    expect(preview.body.errcode).toBe('M_UNRECOGNIZED');
  });

  it('works with matrix-js-sdk uploadContent and its authenticated media URLs', async () => {
    const client = sdkClient(server.baseUrl, alice);
    const bytes = await png(64, 48);
    const res = await client.uploadContent(new Blob([new Uint8Array(bytes)], { type: 'image/png' }), { name: 'sdk.png' });
    expect(res.content_uri).toMatch(/^mxc:\/\//);

    const url = client.mxcUrlToHttp(res.content_uri, undefined, undefined, undefined, false, true, true)!;
    expect(url).toContain('/_matrix/client/v1/media/download/');
    const dl = await fetch(url, { headers: { authorization: `Bearer ${alice.accessToken}` } });
    expect(dl.status).toBe(200);
    expect(dl.headers.get('content-type')).toBe('image/png');
    expect(dl.headers.get('content-disposition')).toBe('inline; filename="sdk.png"');
    expect(Buffer.from(await dl.arrayBuffer()).equals(bytes)).toBe(true);

    const thumbUrl = client.mxcUrlToHttp(res.content_uri, 32, 32, 'crop', false, true, true)!;
    const th = await fetch(thumbUrl, { headers: { authorization: `Bearer ${alice.accessToken}` } });
    expect(th.status).toBe(200);
    expect(await dims(Buffer.from(await th.arrayBuffer()))).toMatchObject({ width: 32, height: 32 });
  });
});

// Issue 13 part 4, Synapse's enable_authenticated_media (MSC3916), on by default in Skjól.
describe.each(testDialects())('authenticated media (%s)', (dialect) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  const legacyPaths = (id: string) => [
    `/_matrix/media/v3/download/${server.serverName}/${id}`,
    `/_matrix/media/r0/download/${server.serverName}/${id}/photo.png`,
    `/_matrix/media/v1/download/${server.serverName}/${id}`,
    `/_matrix/media/v3/thumbnail/${server.serverName}/${id}?width=32&height=32&method=crop`,
    `/_matrix/media/r0/thumbnail/${server.serverName}/${id}?width=32&height=32&method=scale`,
  ];
  const authenticatedPaths = (id: string) => [
    `/_matrix/client/v1/media/download/${server.serverName}/${id}`,
    `/_matrix/client/v1/media/download/${server.serverName}/${id}/photo.png`,
    `/_matrix/client/v1/media/thumbnail/${server.serverName}/${id}?width=32&height=32&method=crop`,
  ];

  beforeAll(async () => {
    server = await startHomeserver({ dialect });
    alice = await registerUser(server.baseUrl, 'alice');
    bob = await registerUser(server.baseUrl, 'bob');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('serves new media only on the authenticated paths, to any user with a token; the legacy paths answer 404', async () => {
    const up = await upload(server.baseUrl, alice.accessToken, await png(200, 100), { contentType: 'image/png', filename: 'photo.png' });
    const { id } = mxcParts(up.body.content_uri);
    for (const path of authenticatedPaths(id)) {
      expect((await get(server.baseUrl, path, bob.accessToken)).status, path).toBe(200);
      const anon = await get(server.baseUrl, path);
      expect(anon.status, path).toBe(401);
      expect(anon.json.errcode).toBe('M_MISSING_TOKEN');
    }
    for (const path of legacyPaths(id)) {
      for (const token of [undefined, alice.accessToken]) {
        const res = await get(server.baseUrl, path, token);
        expect(res.status, path).toBe(404);
        expect(res.json.errcode).toBe('M_NOT_FOUND');
      }
    }
  });

  it('applies to the create-then-upload flow too, also while the download waits for the bytes', async () => {
    const created = await request(server.baseUrl, 'POST', '/_matrix/media/v1/create', { token: alice.accessToken, body: {} });
    const { server: host, id } = mxcParts(created.body.content_uri);
    // Refused at once, not after waiting for an upload it would never serve.
    const waiting = await get(server.baseUrl, `/_matrix/media/v3/download/${host}/${id}?timeout_ms=60000`);
    expect(waiting.status).toBe(404);
    const put = await request(server.baseUrl, 'PUT', `/_matrix/media/v3/upload/${host}/${id}`, { token: alice.accessToken, rawBody: Buffer.from('late bytes') });
    expect(put.status).toBe(200);
    expect((await get(server.baseUrl, `/_matrix/media/v3/download/${host}/${id}`)).status).toBe(404);
    expect((await get(server.baseUrl, `/_matrix/client/v1/media/download/${host}/${id}`, bob.accessToken)).bytes.toString()).toBe('late bytes');
  });

  it('media stored while the setting was off stays public; the mark is kept when it is turned off and on again', async () => {
    server = await server.restart({ enable_authenticated_media: false });
    const before = mxcParts((await upload(server.baseUrl, alice.accessToken, await png(64, 64), { contentType: 'image/png' })).body.content_uri).id;
    server = await server.restart({ enable_authenticated_media: true });
    const after = mxcParts((await upload(server.baseUrl, alice.accessToken, await png(64, 64), { contentType: 'image/png' })).body.content_uri).id;
    for (const path of legacyPaths(before)) expect((await get(server.baseUrl, path)).status, path).toBe(200);
    for (const path of legacyPaths(after)) expect((await get(server.baseUrl, path)).status, path).toBe(404);
    for (const id of [before, after]) {
      for (const path of authenticatedPaths(id)) expect((await get(server.baseUrl, path, alice.accessToken)).status, path).toBe(200);
    }
    // Turned off, the legacy paths serve everything, as Synapse; turned on again, the new item is closed again.
    server = await server.restart({ enable_authenticated_media: false });
    for (const path of legacyPaths(after)) expect((await get(server.baseUrl, path)).status, path).toBe(200);
    server = await server.restart({ enable_authenticated_media: true });
    for (const path of legacyPaths(after)) expect((await get(server.baseUrl, path)).status, path).toBe(404);
  });
});

describe('content repository: dynamic thumbnails, expiry and retention', () => {
  let server: TestServer;
  let alice: TestUser;

  beforeAll(async () => {
    server = await startHomeserver({
      config: { dynamic_thumbnails: true, unused_expiration_time: 500, media_retention: { local_media_lifetime: '1d' } },
    });
    alice = await registerUser(server.baseUrl, 'alice');
  });
  afterAll(async () => {
    await server?.close();
  });

  it('makes thumbnails of exactly the requested box with dynamic_thumbnails', async () => {
    const up = await upload(server.baseUrl, alice.accessToken, await png(1000, 500), { contentType: 'image/png' });
    const base = `/_matrix/client/v1/media/thumbnail/${server.serverName}/${mxcParts(up.body.content_uri).id}`;
    const scale = await get(server.baseUrl, `${base}?width=50&height=50&method=scale`, alice.accessToken);
    expect(await dims(scale.bytes)).toMatchObject({ width: 50, height: 25 });
    const crop = await get(server.baseUrl, `${base}?width=40&height=30&method=crop`, alice.accessToken);
    expect(await dims(crop.bytes)).toMatchObject({ width: 40, height: 30 });
  });

  it('streams large files with their length', async () => {
    const big = Buffer.alloc(6 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    const up = await upload(server.baseUrl, alice.accessToken, big, { contentType: 'video/mp4', filename: 'big.mp4' });
    expect(up.status).toBe(200);
    const dl = await get(server.baseUrl, `/_matrix/client/v1/media/download/${server.serverName}/${mxcParts(up.body.content_uri).id}`, alice.accessToken);
    expect(dl.status).toBe(200);
    expect(dl.headers.get('content-length')).toBe(String(big.length));
    expect(dl.bytes.equals(big)).toBe(true);
  });

  // Linux only: counts this process's open descriptors on media files.
  it.skipIf(!existsSync('/proc/self/fd'))('closes the file when a client abandons a streamed download', async () => {
    const openMediaFiles = () =>
      readdirSync('/proc/self/fd')
        .map((fd) => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`);
          } catch {
            return '';
          }
        })
        .filter((target) => target.startsWith(join(server.dir, 'media', 'local_content')));
    const up = await upload(server.baseUrl, alice.accessToken, Buffer.alloc(20 * 1024 * 1024, 1));
    const path = `/_matrix/client/v1/media/download/${server.serverName}/${mxcParts(up.body.content_uri).id}`;
    for (let i = 0; i < 3; i++) {
      const abort = new AbortController();
      const res = await fetch(server.baseUrl + path, { signal: abort.signal, headers: { authorization: `Bearer ${alice.accessToken}` } });
      await res.body!.getReader().read();
      abort.abort();
    }
    for (let i = 0; i < 50 && openMediaFiles().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(openMediaFiles()).toEqual([]);
  });

  it('expires unused mxc URIs', async () => {
    const created = await request(server.baseUrl, 'POST', '/_matrix/media/v1/create', { token: alice.accessToken, body: {} });
    const { server: host, id } = mxcParts(created.body.content_uri);
    await new Promise((r) => setTimeout(r, 600));
    const put = await request(server.baseUrl, 'PUT', `/_matrix/media/v3/upload/${host}/${id}`, { token: alice.accessToken, rawBody: Buffer.from('late') });
    expect(put.status).toBe(404);
    expect(put.body.errcode).toBe('M_NOT_FOUND');
    const dl = await get(server.baseUrl, `/_matrix/client/v1/media/download/${host}/${id}`, alice.accessToken);
    expect(dl.status).toBe(404);
    expect(await server.hs.services.media.purgeExpired()).toBeGreaterThanOrEqual(1);
    expect(await server.hs.services.db.knex('media').where({ media_id: id }).first()).toBeUndefined();
  });

  it('deletes media not accessed within local_media_lifetime, files included', async () => {
    const up = await upload(server.baseUrl, alice.accessToken, await png(400, 400), { contentType: 'image/png' });
    const { id } = mxcParts(up.body.content_uri);
    const thumb = await get(server.baseUrl, `/_matrix/client/v1/media/thumbnail/${server.serverName}/${id}?width=32&height=32&method=crop`, alice.accessToken);
    expect(thumb.status).toBe(200);
    const media = server.hs.services.media as unknown as { store: { contentPath(id: string): string; thumbnailDir(id: string): string } };
    expect(existsSync(media.store.contentPath(id))).toBe(true);

    expect(await server.hs.services.media.purgeExpired(Date.now() + 3_600_000)).toBe(0);
    expect(await server.hs.services.media.purgeExpired(Date.now() + 2 * 86_400_000)).toBeGreaterThanOrEqual(1);
    const dl = await get(server.baseUrl, `/_matrix/client/v1/media/download/${server.serverName}/${id}`, alice.accessToken);
    expect(dl.status).toBe(404);
    expect(existsSync(media.store.contentPath(id))).toBe(false);
    expect(existsSync(media.store.thumbnailDir(id))).toBe(false);
    expect(await server.hs.services.db.knex('media_thumbnails').where({ media_id: id })).toEqual([]);
  });
});

describe('content repository helpers', () => {
  it('encodes Content-Disposition file names per RFC 6266', () => {
    expect(contentDisposition('inline', undefined)).toBe('inline');
    expect(contentDisposition('inline', 'a b.png')).toBe('inline; filename="a b.png"');
    expect(contentDisposition('attachment', 'say "hi".txt')).toBe('attachment; filename="say \\"hi\\".txt"');
    expect(contentDisposition('attachment', '../x\r\n.txt')).toBe('attachment; filename=".._x.txt"');
    expect(contentDisposition('inline', 'ünï*.txt')).toBe("inline; filename*=utf-8''%C3%BCn%C3%AF%2A.txt");
  });

  it('picks configured thumbnail sizes like Synapse, or the exact box when dynamic', () => {
    const sizes = [
      { width: 32, height: 32, method: 'crop' as const },
      { width: 96, height: 96, method: 'crop' as const },
      { width: 320, height: 240, method: 'scale' as const },
      { width: 800, height: 600, method: 'scale' as const },
    ];
    expect(selectThumbnailSize({ width: 40, height: 40, method: 'crop' }, sizes, false)).toEqual(sizes[1]);
    expect(selectThumbnailSize({ width: 500, height: 500, method: 'crop' }, sizes, false)).toEqual(sizes[1]);
    expect(selectThumbnailSize({ width: 321, height: 10, method: 'scale' }, sizes, false)).toEqual(sizes[3]);
    expect(selectThumbnailSize({ width: 40, height: 40, method: 'scale' }, [sizes[0]!], false)).toEqual(sizes[0]);
    expect(selectThumbnailSize({ width: 5000, height: 40, method: 'scale' }, sizes, true)).toEqual({ width: 2048, height: 40, method: 'scale' });
  });

  it('parses config durations', () => {
    expect(parseDuration(1500)).toBe(1500);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('90d')).toBe(90 * 86_400_000);
    expect(parseDuration('250')).toBe(250);
  });
});
