import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaLinks } from '../../src/bridge/irc/mediaProxy.js';
import type { TestUser } from '../helpers/users.js';
import { api, enc, matrixUser, sendMessage, startBridgeFixture, type BridgeFixture } from './helpers/bridgeFixture.js';
import { connectIrcUser, type IrcUser } from './helpers/ircUser.js';

// Authenticated media (Skjól's default): the homeserver serves files only to Matrix users with a token, so
// IRC users get a link to the bridge's media proxy, signed for one file, expiring, and size-limited.
describe('IRC bridge: media links with authenticated media', () => {
  let f: BridgeFixture;
  let alice: TestUser;
  let bob: IrcUser;
  let roomId: string;
  let mediaBase: string;
  const TTL = 3600;

  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const upload = async (bytes: Buffer, name: string, type: string) => {
    const res = await fetch(`${f.hs.baseUrl}/_matrix/media/v3/upload?filename=${enc(name)}`, { method: 'POST', headers: { authorization: `Bearer ${alice.accessToken}`, 'content-type': type }, body: bytes });
    return ((await res.json()) as { content_uri: string }).content_uri;
  };
  /** Links made with the bridge's own key, as a forger who stole it could not but the bridge would. */
  const keyLinks = (now: () => number) => new MediaLinks(readFileSync(`${f.config.appservice.registration}.media-key`, 'utf8').trim(), mediaBase, TTL, now);

  beforeAll(async () => {
    f = await startBridgeFixture({
      // A spelling of the address other than the appservice URL's, so the test sees media_url at work.
      config: (port) => ((mediaBase = `http://localhost:${port}`), { media_url: mediaBase, media_proxy: { ttl_seconds: TTL, max_size: '1M' } }),
    });
    alice = await matrixUser(f.hs, 'alice', 'Alice');
    bob = await connectIrcUser(f.irc, 'bob');
    await bob.join('#pics');
    roomId = (await api(f.hs, alice, 'POST', `/_matrix/client/v3/join/${enc('#irc_test_pics:localhost')}`, {})).room_id;
    await bob.waitFor((e) => e.kind === 'join' && e.nick === 'Alice[m]', 'Alice[m] on IRC');
  });

  afterAll(async () => {
    await bob?.disconnect().catch(() => undefined);
    await f?.close();
  });

  it('gives IRC users a media_url link that downloads the exact bytes without a Matrix token', async () => {
    // A PNG signature and 600 kB of noise: binary bytes that any re-encoding would change.
    const image = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), randomBytes(600_000)]);
    const mxc = await upload(image, 'holiday photo.png', 'image/png');
    const mark = bob.mark();
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.image', body: 'holiday photo.png', url: mxc, info: { mimetype: 'image/png', size: image.length } });
    const line = await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && (e.text ?? '').startsWith('holiday photo.png http'), 'the media link', undefined, mark);
    const url = line.text!.split(' ').at(-1)!;
    expect(url.startsWith(`${mediaBase}/_skjol_irc/media/v1/`)).toBe(true);
    // The link expires about TTL seconds from now.
    const expires = Number(new URL(url).pathname.split('/').at(-5));
    expect(Math.abs(expires - (Date.now() / 1000 + TTL))).toBeLessThan(120);

    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    const got = new Uint8Array(await res.arrayBuffer());
    expect(got.length).toBe(image.length);
    expect(sha(got)).toBe(sha(image));
    // Without the bridge, the same file is out of reach for anyone without a token.
    const mediaId = mxc.split('/').pop()!;
    expect((await fetch(`${f.hs.baseUrl}/_matrix/media/v3/download/localhost/${mediaId}`)).status).toBe(404);
    expect((await fetch(`${f.hs.baseUrl}/_matrix/client/v1/media/download/localhost/${mediaId}`)).status).toBe(401);
  });

  it('refuses expired and forged links', async () => {
    const mxc = await upload(Buffer.from('a secret file'), 'secret.txt', 'text/plain');
    const longAgo = Date.now() - 2 * TTL * 1000;
    const expired = keyLinks(() => longAgo).link(mxc, 'secret.txt')!;
    const res = await fetch(expired);
    expect(res.status).toBe(404);
    expect(await res.text()).not.toContain('secret');
    const fresh = keyLinks(Date.now).link(mxc, 'secret.txt')!;
    expect(await (await fetch(fresh)).text()).toBe('a secret file');

    // Another key, a changed signature, a later expiry or another media id under a good signature: all refused.
    const forged = new MediaLinks('not the bridge key', mediaBase, TTL).link(mxc, 'secret.txt')!;
    expect((await fetch(forged)).status).toBe(404);
    const parts = new URL(fresh).pathname.split('/');
    const sig = parts.at(-4)!;
    const flipped = [...parts];
    flipped[flipped.length - 4] = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    expect((await fetch(new URL(flipped.join('/'), fresh))).status).toBe(404);
    const later = [...parts];
    later[later.length - 5] = String(Number(parts.at(-5)) + 86_400);
    expect((await fetch(new URL(later.join('/'), fresh))).status).toBe(404);
    const otherId = (await upload(Buffer.from('other'), 'o.txt', 'text/plain')).split('/').pop()!;
    expect((await fetch(fresh.replace(mxc.split('/').pop()!, otherId))).status).toBe(404);
  });

  it('does not link or serve files above media_proxy.max_size', async () => {
    const big = randomBytes(1_500_000);
    const mxc = await upload(big, 'big.bin', 'application/octet-stream');
    const mark = bob.mark();
    await sendMessage(f.hs, alice, roomId, { msgtype: 'm.file', body: 'big.bin', url: mxc, info: { mimetype: 'application/octet-stream', size: big.length } });
    const line = await bob.waitFor((e) => e.kind === 'message' && e.from === 'Alice[m]' && (e.text ?? '').includes('big.bin'), 'the too-large note', undefined, mark);
    expect(line.text).toBe('sent big.bin (1.4 MB), too large to share with IRC; open Matrix to see it');
    // A link for it (as a client that lied about the size would have got) is refused by the proxy itself.
    const res = await fetch(keyLinks(Date.now).link(mxc, 'big.bin')!);
    expect(res.status).toBe(413);
  });
});
