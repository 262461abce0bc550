import { describe, expect, it } from 'vitest';
import { MultipartError, MultipartTooLarge, boundaryOf, mediaMultipart, parseMediaMultipart } from '../../src/media/multipart.js';

// The federation media multipart parser against well-formed and hostile bodies.

const CT = 'multipart/mixed; boundary=b0undary';

async function* chunks(body: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < body.length; i += size) yield body.subarray(i, i + size);
}

async function collect(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of body) out.push(c);
  return Buffer.concat(out);
}

function body(parts: string[]): Buffer {
  return Buffer.from(parts.join(''), 'latin1');
}

const wellFormed = (media: string) =>
  body(['--b0undary\r\n', 'Content-Type: application/json\r\n\r\n', '{}', '\r\n--b0undary\r\n', 'Content-Type: text/plain\r\n\r\n', media, '\r\n--b0undary--\r\n']);

describe('parseMediaMultipart', () => {
  it('reads the metadata and streams the media part, whatever the chunking', async () => {
    const media = 'line one\r\n--b0undar not quite a delimiter, nor is --b0undary mid-line\r\n-\r\nend\r';
    for (const size of [1, 2, 7, 64, 100_000]) {
      const parsed = await parseMediaMultipart(chunks(wellFormed(media), size), CT, 1000, collect);
      expect(parsed.metadata).toEqual({});
      expect(parsed.headers['content-type']).toBe('text/plain');
      expect(parsed.stored!.toString('latin1')).toBe(media);
    }
  });

  it('round-trips what our endpoint serves, a preamble, and a Location part', async () => {
    const made = mediaMultipart({ 'Content-Type': 'image/png' }, Buffer.from('PNGDATA'), 7);
    const served = await collect(made.body);
    expect(served.length).toBe(made.contentLength);
    const parsed = await parseMediaMultipart(chunks(served, 5), made.contentType, 100, collect);
    expect(parsed.stored!.toString()).toBe('PNGDATA');

    const withPreamble = Buffer.concat([Buffer.from('ignored preamble\r\n'), wellFormed('x')]);
    expect((await parseMediaMultipart(chunks(withPreamble, 3), CT, 10, collect)).stored!.toString()).toBe('x');

    const redirect = body(['--b0undary\r\n\r\n{}\r\n--b0undary\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--b0undary--\r\n']);
    const r = await parseMediaMultipart(chunks(redirect, 4), CT, 10, collect);
    expect(r.location).toBe('https://cdn.example/x');
    expect(r.stored).toBeUndefined();
  });

  it('refuses a missing or malformed boundary and other content types', () => {
    expect(() => boundaryOf('multipart/mixed')).toThrow(MultipartError);
    expect(() => boundaryOf('multipart/mixed; charset=utf-8')).toThrow('missing boundary');
    expect(() => boundaryOf('multipart/mixed; boundary=')).toThrow('malformed boundary');
    expect(() => boundaryOf(`multipart/mixed; boundary=${'x'.repeat(71)}`)).toThrow('malformed boundary');
    expect(() => boundaryOf('application/json')).toThrow('not multipart/mixed');
    expect(() => boundaryOf(undefined)).toThrow(MultipartError);
    expect(boundaryOf('Multipart/Mixed; Boundary="a b:c"')).toBe('a b:c');
  });

  it('stops a media part larger than the cap without reading the rest', async () => {
    let pulled = 0;
    async function* endless(): AsyncGenerator<Buffer> {
      yield Buffer.from('--b0undary\r\n\r\n{}\r\n--b0undary\r\nContent-Type: a/b\r\n\r\n');
      for (;;) {
        pulled++;
        yield Buffer.alloc(64 * 1024, 0x61);
      }
    }
    await expect(parseMediaMultipart(endless(), CT, 1024 * 1024, collect)).rejects.toBeInstanceOf(MultipartTooLarge);
    expect(pulled).toBeLessThan(20);
  });

  it('refuses a body without a media part, with a truncated media part, or with a third part', async () => {
    const noMedia = body(['--b0undary\r\nContent-Type: application/json\r\n\r\n{}\r\n--b0undary--\r\n']);
    await expect(parseMediaMultipart(chunks(noMedia, 8), CT, 10, collect)).rejects.toThrow('no media part');
    const truncated = body(['--b0undary\r\n\r\n{}\r\n--b0undary\r\n\r\nsome bytes and then nothing']);
    await expect(parseMediaMultipart(chunks(truncated, 8), CT, 100, collect)).rejects.toThrow('body ended inside the media part');
    const third = body(['--b0undary\r\n\r\n{}\r\n--b0undary\r\n\r\nm\r\n--b0undary\r\n\r\nextra\r\n--b0undary--']);
    await expect(parseMediaMultipart(chunks(third, 8), CT, 100, collect)).rejects.toThrow('unexpected part');
  });

  it('refuses bad metadata, endless headers and an endless preamble', async () => {
    const notJson = body(['--b0undary\r\n\r\nnot json\r\n--b0undary\r\n\r\nm\r\n--b0undary--']);
    await expect(parseMediaMultipart(chunks(notJson, 8), CT, 100, collect)).rejects.toThrow('metadata part is not JSON');
    const array = body(['--b0undary\r\n\r\n[1]\r\n--b0undary\r\n\r\nm\r\n--b0undary--']);
    await expect(parseMediaMultipart(chunks(array, 8), CT, 100, collect)).rejects.toThrow('metadata is not an object');
    const hugeMeta = body(['--b0undary\r\n\r\n', '{"a":"', 'x'.repeat(200_000), '"}\r\n--b0undary\r\n\r\nm\r\n--b0undary--']);
    await expect(parseMediaMultipart(chunks(hugeMeta, 4096), CT, 100, collect)).rejects.toThrow('metadata part is too long');
    const endlessHeaders = body(['--b0undary\r\n', 'X-A: b\r\n'.repeat(10_000)]);
    await expect(parseMediaMultipart(chunks(endlessHeaders, 4096), CT, 100, collect)).rejects.toThrow('part headers is too long');
    const badHeader = body(['--b0undary\r\nno colon here\r\n\r\n{}\r\n--b0undary\r\n\r\nm\r\n--b0undary--']);
    await expect(parseMediaMultipart(chunks(badHeader, 8), CT, 100, collect)).rejects.toThrow('malformed part header');
    const endlessPreamble = Buffer.alloc(100_000, 0x62);
    await expect(parseMediaMultipart(chunks(endlessPreamble, 4096), CT, 100, collect)).rejects.toThrow('preamble is too long');
    await expect(parseMediaMultipart(chunks(Buffer.alloc(0), 1), CT, 100, collect)).rejects.toBeInstanceOf(MultipartError);
  });
});
