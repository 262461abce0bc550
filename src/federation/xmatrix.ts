/**
 * Request authentication between servers (spec: Server-Server API, "Request Authentication"): the
 * `Authorization: X-Matrix …` header and the JSON object its signature covers. Pure: no I/O.
 */
import { decodeBase64, encodeBase64 } from '../crypto/base64.js';
import { canonicalJsonBytes } from '../crypto/canonicalJson.js';
import { signableBytes, signBytes, verifyBytes, type SigningKey } from '../crypto/signing.js';

/** What a signed request's signature covers. `uri` is the request target as sent: path and query. */
export interface RequestToSign {
  method: string;
  uri: string;
  origin: string;
  destination: string;
  /** The JSON body, when the request has one. */
  content?: unknown;
}

export interface XMatrixAuth {
  origin: string;
  /** Optional on receipt for compatibility with older servers; always sent by us. */
  destination: string | undefined;
  key: string;
  sig: string;
}

export class XMatrixParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XMatrixParseError';
  }
}

// RFC 9110 token characters (auth-param names).
const TCHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;

/**
 * Parses an `Authorization` header of the X-Matrix scheme (RFC 9110 §11.4 credentials: the scheme name is
 * case-insensitive, parameter names are case-insensitive, values are tokens or quoted strings with
 * backslash escapes). Unquoted values are read leniently up to the next comma or whitespace, since server
 * names with ports (`:`) are not RFC tokens yet older servers send them unquoted. Unknown parameters are
 * ignored; a repeated parameter is an error. Returns undefined when the header is not X-Matrix at all.
 */
export function parseXMatrixHeader(header: string): XMatrixAuth | undefined {
  const scheme = /^\s*X-Matrix(?:[ \t]+|$)/i.exec(header);
  if (!scheme) return undefined;
  const s = header.slice(scheme[0].length);
  const params = new Map<string, string>();
  let i = 0;
  const skip = (chars: RegExp) => {
    while (i < s.length && chars.test(s[i]!)) i++;
  };
  for (;;) {
    skip(/[ \t,]/);
    if (i >= s.length) break;
    const nameStart = i;
    while (i < s.length && TCHAR.test(s[i]!)) i++;
    if (i === nameStart) throw new XMatrixParseError(`unexpected character at ${i}`);
    const name = s.slice(nameStart, i).toLowerCase();
    skip(/[ \t]/);
    if (s[i] !== '=') throw new XMatrixParseError(`expected '=' after ${name}`);
    i++;
    skip(/[ \t]/);
    let value = '';
    if (s[i] === '"') {
      i++;
      let closed = false;
      while (i < s.length) {
        const c = s[i]!;
        if (c === '\\') {
          if (i + 1 >= s.length) break;
          value += s[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          closed = true;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) throw new XMatrixParseError(`unterminated quoted value for ${name}`);
    } else {
      const start = i;
      while (i < s.length && !/[\s,"]/.test(s[i]!)) i++;
      value = s.slice(start, i);
      if (value === '') throw new XMatrixParseError(`empty value for ${name}`);
    }
    if (params.has(name)) throw new XMatrixParseError(`parameter ${name} given twice`);
    params.set(name, value);
    skip(/[ \t]/);
    if (i < s.length && s[i] !== ',') throw new XMatrixParseError(`expected ',' after ${name}`);
  }
  const origin = params.get('origin');
  const key = params.get('key');
  const sig = params.get('sig');
  if (!origin) throw new XMatrixParseError('missing origin');
  if (!key) throw new XMatrixParseError('missing key');
  if (!sig) throw new XMatrixParseError('missing sig');
  return { origin, destination: params.get('destination'), key, sig };
}

function quote(value: string): string {
  return '"' + value.replace(/["\\]/g, (c) => '\\' + c) + '"';
}

/**
 * Formats the header the way older receivers parse it too: one space after the scheme, lower-case
 * parameter names, quoted values.
 */
export function formatXMatrixHeader(auth: XMatrixAuth): string {
  const parts = [`origin=${quote(auth.origin)}`];
  if (auth.destination !== undefined) parts.push(`destination=${quote(auth.destination)}`);
  parts.push(`key=${quote(auth.key)}`, `sig=${quote(auth.sig)}`);
  return 'X-Matrix ' + parts.join(',');
}

/** The JSON object a request signature covers (without `signatures`). */
export function requestJson(req: RequestToSign): Record<string, unknown> {
  const out: Record<string, unknown> = {
    method: req.method.toUpperCase(),
    uri: req.uri,
    origin: req.origin,
    destination: req.destination,
  };
  if (req.content !== undefined) out.content = req.content;
  return out;
}

/** Signs a request as `req.origin` and returns the `Authorization` header value. */
export function signRequest(req: RequestToSign, key: SigningKey): string {
  const sig = encodeBase64(signBytes(signableBytes(requestJson(req)), key));
  return formatXMatrixHeader({ origin: req.origin, destination: req.destination, key: key.keyId, sig });
}

/** True when `auth.sig` is `auth.origin`'s signature (key `auth.key`, given public key) over `req`. */
export function verifyRequestSignature(req: RequestToSign, auth: XMatrixAuth, publicKeyBase64: string): boolean {
  try {
    if (!auth.key.startsWith('ed25519:')) return false;
    // Floats in a body are refused later with M_BAD_JSON (room v6+); the signature over them still counts.
    const bytes = canonicalJsonBytes(requestJson(req), { allowFloats: true });
    return verifyBytes(bytes, decodeBase64(auth.sig), decodeBase64(publicKeyBase64));
  } catch {
    return false;
  }
}
