/**
 * Unpadded Base64 as used throughout Matrix (spec appendix "Unpadded Base64").
 * Encoding never emits padding; decoding accepts padded or unpadded input in
 * either the standard or the URL-safe alphabet.
 */

/** Standard alphabet (`+`, `/`), no `=` padding. */
export function encodeBase64(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('base64').replace(/=+$/, '');
}

/** URL-safe alphabet (`-`, `_`), no `=` padding. */
export function encodeBase64Url(buf: Uint8Array): string {
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('base64url');
}

export class Base64Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Base64Error';
  }
}

const BASE64_RE = /^[A-Za-z0-9+/\-_]*={0,2}$/;

/**
 * Decode standard or URL-safe base64, padded or not. Throws `Base64Error` on
 * characters outside the alphabets, misplaced padding, or an impossible length
 * (Node's own decoder silently ignores such garbage, which we don't want when
 * the input is a signature or a key).
 */
export function decodeBase64(s: string): Buffer {
  if (typeof s !== 'string' || !BASE64_RE.test(s)) throw new Base64Error('invalid base64');
  const body = s.replace(/=+$/, '');
  if (s.length !== body.length && s.length % 4 !== 0) throw new Base64Error('invalid base64 padding');
  if (body.length % 4 === 1) throw new Base64Error('invalid base64 length');
  return Buffer.from(body.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}
