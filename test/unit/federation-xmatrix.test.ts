import { sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeBase64, encodeBase64 } from '../../src/crypto/base64.js';
import { signingKeyFromSeed } from '../../src/crypto/signing.js';
import { FederationAuthenticator } from '../../src/federation/auth.js';
import { encodeQuery } from '../../src/federation/client.js';
import { parseServerName, serverNameOf } from '../../src/federation/serverName.js';
import {
  XMatrixParseError,
  formatXMatrixHeader,
  parseXMatrixHeader,
  signRequest,
  verifyRequestSignature,
  type RequestToSign,
} from '../../src/federation/xmatrix.js';
import { MatrixError } from '../../src/errors.js';

// The spec appendix's example seed ("Signing JSON"), so vectors can be checked by any implementation.
const SEED = decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1');
const KEY = signingKeyFromSeed('1', SEED);
const OTHER = signingKeyFromSeed('2', Buffer.alloc(32, 7));

describe('X-Matrix header parsing (RFC 9110 credentials)', () => {
  it.each<[string, string, Record<string, string | undefined>]>([
    ['spec form', 'X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF"', { origin: 'origin.hs.example.com', destination: 'destination.hs.example.com', key: 'ed25519:key1', sig: 'ABCDEF' }],
    ['unquoted values, colons and ports', 'X-Matrix origin=a.example:8448,key=ed25519:1,sig=c2ln', { origin: 'a.example:8448', destination: undefined, key: 'ed25519:1', sig: 'c2ln' }],
    ['case-insensitive scheme and names', 'x-matrix ORIGIN="a.org",Key="ed25519:1",SIG="s",Destination="b.org"', { origin: 'a.org', destination: 'b.org', key: 'ed25519:1', sig: 's' }],
    ['whitespace around = and commas', 'X-Matrix   origin = "a.org" ,  key="ed25519:1",\tsig = "s"', { origin: 'a.org', destination: undefined, key: 'ed25519:1', sig: 's' }],
    ['quoted-pair escapes', 'X-Matrix origin="a\\"b",key="ed25519:1",sig="s\\\\"', { origin: 'a"b', destination: undefined, key: 'ed25519:1', sig: 's\\' }],
    ['unknown parameters ignored', 'X-Matrix origin="a.org",foo=bar,key="ed25519:1",sig="s",baz="q,x"', { origin: 'a.org', destination: undefined, key: 'ed25519:1', sig: 's' }],
    ['commas inside quotes', 'X-Matrix sig="a,b",origin="a.org",key="ed25519:1"', { origin: 'a.org', destination: undefined, key: 'ed25519:1', sig: 'a,b' }],
  ])('%s', (_name, header, expected) => {
    expect(parseXMatrixHeader(header)).toEqual(expected);
  });

  it('returns undefined for other schemes', () => {
    expect(parseXMatrixHeader('Bearer abc')).toBeUndefined();
    expect(parseXMatrixHeader('X-Matrixorigin="a"')).toBeUndefined();
    expect(parseXMatrixHeader('')).toBeUndefined();
  });

  it.each([
    ['missing sig', 'X-Matrix origin="a.org",key="ed25519:1"'],
    ['missing origin', 'X-Matrix key="ed25519:1",sig="s"'],
    ['missing key', 'X-Matrix origin="a.org",sig="s"'],
    ['repeated parameter', 'X-Matrix origin="a.org",origin="b.org",key="ed25519:1",sig="s"'],
    ['unterminated quote', 'X-Matrix origin="a.org,key="ed25519:1",sig="s'],
    ['no value', 'X-Matrix origin=,key="ed25519:1",sig="s"'],
    ['no =', 'X-Matrix origin "a.org",key="ed25519:1",sig="s"'],
    ['garbage between params', 'X-Matrix origin="a.org" junk,key="ed25519:1",sig="s"'],
  ])('rejects %s', (_name, header) => {
    expect(() => parseXMatrixHeader(header)).toThrow(XMatrixParseError);
  });

  it('formats what it parses, the way older servers read it', () => {
    const auth = { origin: 'a.org:8448', destination: 'b.org', key: 'ed25519:1', sig: 'c2ln' };
    const header = formatXMatrixHeader(auth);
    expect(header).toBe('X-Matrix origin="a.org:8448",destination="b.org",key="ed25519:1",sig="c2ln"');
    expect(parseXMatrixHeader(header)).toEqual(auth);
  });
});

describe('request signing', () => {
  const req: RequestToSign = {
    method: 'PUT',
    uri: '/_matrix/federation/v1/send/1234?x=%20y',
    origin: 'origin.hs.example.com',
    destination: 'destination.hs.example.com',
    content: { pdus: [], edus: [{ edu_type: 'm.typing', content: { ü: 1 } }] },
  };

  it('signs the canonical JSON of {method, uri, origin, destination, content} (independent check)', () => {
    const header = signRequest(req, KEY);
    const auth = parseXMatrixHeader(header)!;
    expect(auth).toMatchObject({ origin: req.origin, destination: req.destination, key: 'ed25519:1' });
    // Built by hand: keys sorted, no spaces, UTF-8.
    const canonical =
      '{"content":{"edus":[{"content":{"ü":1},"edu_type":"m.typing"}],"pdus":[]},' +
      '"destination":"destination.hs.example.com","method":"PUT","origin":"origin.hs.example.com",' +
      '"uri":"/_matrix/federation/v1/send/1234?x=%20y"}';
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), SEED]);
    const expected = encodeBase64(sign(null, Buffer.from(canonical, 'utf8'), { key: pkcs8, format: 'der', type: 'pkcs8' }));
    expect(auth.sig).toBe(expected);
    expect(verifyRequestSignature(req, auth, KEY.publicKey)).toBe(true);
  });

  it('omits content when there is no body', () => {
    const get = { method: 'get', uri: '/_matrix/federation/v1/version', origin: 'a.org', destination: 'b.org' };
    const auth = parseXMatrixHeader(signRequest(get, KEY))!;
    const canonical = '{"destination":"b.org","method":"GET","origin":"a.org","uri":"/_matrix/federation/v1/version"}';
    const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), SEED]);
    expect(auth.sig).toBe(encodeBase64(sign(null, Buffer.from(canonical), { key: pkcs8, format: 'der', type: 'pkcs8' })));
    // An empty object body is not the same as no body.
    expect(verifyRequestSignature({ ...get, content: {} }, auth, KEY.publicKey)).toBe(false);
  });

  it.each<[string, Partial<RequestToSign>]>([
    ['method', { method: 'POST' }],
    ['uri path', { uri: '/_matrix/federation/v1/send/1235?x=%20y' }],
    ['uri query', { uri: '/_matrix/federation/v1/send/1234?x=y' }],
    ['origin', { origin: 'evil.example.com' }],
    ['destination', { destination: 'other.example.com' }],
    ['content', { content: { pdus: [], edus: [] } }],
  ])('fails verification when %s is tampered with', (_name, change) => {
    const auth = parseXMatrixHeader(signRequest(req, KEY))!;
    expect(verifyRequestSignature({ ...req, ...change }, auth, KEY.publicKey)).toBe(false);
  });

  it('fails with the wrong public key, a wrong key ID or a mangled signature', () => {
    const auth = parseXMatrixHeader(signRequest(req, KEY))!;
    expect(verifyRequestSignature(req, auth, OTHER.publicKey)).toBe(false);
    expect(verifyRequestSignature(req, { ...auth, key: 'curve25519:1' }, KEY.publicKey)).toBe(false);
    expect(verifyRequestSignature(req, { ...auth, sig: auth.sig.slice(1) }, KEY.publicKey)).toBe(false);
    expect(verifyRequestSignature(req, { ...auth, sig: 'not base64!' }, KEY.publicKey)).toBe(false);
  });
});

describe('server names and query strings', () => {
  it.each<[string, ReturnType<typeof parseServerName>]>([
    ['example.org', { host: 'example.org', address: 'example.org', port: undefined, isIpLiteral: false }],
    ['example.org:8449', { host: 'example.org', address: 'example.org', port: 8449, isIpLiteral: false }],
    ['127.0.0.1:8448', { host: '127.0.0.1', address: '127.0.0.1', port: 8448, isIpLiteral: true }],
    ['[::1]:80', { host: '[::1]', address: '::1', port: 80, isIpLiteral: true }],
    ['[1234:5678::abcd]', { host: '[1234:5678::abcd]', address: '1234:5678::abcd', port: undefined, isIpLiteral: true }],
  ])('parses %s', (name, expected) => {
    expect(parseServerName(name)).toEqual(expected);
  });

  it.each(['', 'a b', 'example.org:', 'example.org:0', 'example.org:70000', '[::1', '[nothex]:80', '999.1.1.1', 'ex_ample.org', 'a/b'])('rejects %j', (name) => {
    expect(parseServerName(name)).toBeUndefined();
  });

  it('finds the server of an ID', () => {
    expect(serverNameOf('@alice:example.org:8448')).toBe('example.org:8448');
    expect(serverNameOf('@alice')).toBeUndefined();
  });

  it('encodes query strings for signing and sending alike', () => {
    expect(encodeQuery({ user_id: '@a:b.org', field: undefined, v: ['x y', '&'], n: 3 })).toBe('?user_id=%40a%3Ab.org&v=x%20y&v=%26&n=3');
    expect(encodeQuery({})).toBe('');
  });
});

describe('inbound X-Matrix verification', () => {
  const ours = 'dest.example';
  const keys: Record<string, string> = { 'origin.example ed25519:1': KEY.publicKey };
  const auth = (allowed: (s: string) => boolean = () => true) =>
    new FederationAuthenticator({
      serverName: ours,
      keyStore: { verifyKeyFor: async (server: string, keyId: string) => keys[`${server} ${keyId}`] },
      isAllowed: allowed,
      clock: { now: () => 1 },
    });
  const signed = (over: Partial<RequestToSign> = {}, key = KEY) => {
    const r = { method: 'POST', uri: '/_matrix/federation/v1/x?a=1', origin: 'origin.example', destination: ours, content: { a: 1 }, ...over };
    return { r, header: signRequest(r, key) };
  };
  const inbound = (header: string | undefined, uri = '/_matrix/federation/v1/x?a=1', body = '{"a":1}', method = 'POST') => ({
    method,
    uri,
    headers: header === undefined ? {} : { authorization: header },
    rawBody: Buffer.from(body),
  });
  const errcodeOf = async (p: Promise<unknown>) => {
    try {
      await p;
      return 'ok';
    } catch (err) {
      expect(err).toBeInstanceOf(MatrixError);
      return `${(err as MatrixError).status} ${(err as MatrixError).errcode}`;
    }
  };

  it('accepts a correctly signed request and returns its origin', async () => {
    await expect(auth().authenticate(inbound(signed().header))).resolves.toEqual({ origin: 'origin.example' });
  });

  it('accepts a header without destination (older senders) when the signature names us', async () => {
    const { header } = signed();
    const noDest = header.replace(/destination="[^"]*",/, '');
    await expect(auth().authenticate(inbound(noDest))).resolves.toEqual({ origin: 'origin.example' });
  });

  it('refuses what the spec says to refuse', async () => {
    const a = auth();
    expect(await errcodeOf(a.authenticate(inbound(undefined)))).toBe('401 M_UNAUTHORIZED');
    expect(await errcodeOf(a.authenticate(inbound('Bearer abc')))).toBe('401 M_UNAUTHORIZED');
    // A header missing its key and signature is malformed: 400 M_UNAUTHORIZED, as Synapse answers.
    expect(await errcodeOf(a.authenticate(inbound('X-Matrix origin="x"')))).toBe('400 M_UNAUTHORIZED');
    expect(await errcodeOf(a.authenticate(inbound(signed({ destination: 'other.example' }).header)))).toBe('401 M_UNAUTHORIZED');
    expect(await errcodeOf(a.authenticate(inbound(signed({}, signingKeyFromSeed('1', Buffer.alloc(32, 1))).header)))).toBe('401 M_UNAUTHORIZED');
    expect(await errcodeOf(a.authenticate(inbound(signed({}, OTHER).header)))).toBe('401 M_UNAUTHORIZED'); // unknown key ID
    expect(await errcodeOf(a.authenticate(inbound(signed().header, '/_matrix/federation/v1/x?a=2')))).toBe('401 M_UNAUTHORIZED');
    expect(await errcodeOf(a.authenticate(inbound(signed().header, undefined, '{"a":2}')))).toBe('401 M_UNAUTHORIZED');
    expect(await errcodeOf(a.authenticate(inbound(signed().header, undefined, undefined, 'PUT')))).toBe('401 M_UNAUTHORIZED');
    expect(await errcodeOf(a.authenticate(inbound(signed().header, undefined, '{nope')))).toBe('400 M_NOT_JSON');
  });

  it('enforces federation_domain_whitelist with 403 M_FORBIDDEN', async () => {
    const a = auth((s) => s === 'someone.else');
    expect(await errcodeOf(a.authenticate(inbound(signed().header)))).toBe('403 M_FORBIDDEN');
  });
});
