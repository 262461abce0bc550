// Builds hostile requests for one mounted route: path parameters, query string, headers and body.
import fc from 'fast-check';
import { z } from 'zod';
import type { RouteDefinition } from '../../../src/http/route.js';
import { fromSchema, schemaKeys, type StringsFor } from './fromSchema.js';
import { INVALID_UTF8, RAW_BODIES, RAW_JSON_VALUES, encodedComponent, hostileJson, hostileString, percentEncode } from './values.js';

/** How the request authenticates; the test turns this into a header with real credentials. */
export type AuthChoice =
  | { kind: 'valid' }
  | { kind: 'queryToken' }
  | { kind: 'signed' }
  | { kind: 'none' }
  | { kind: 'header'; value: string };

export interface FuzzCase {
  method: string;
  target: string;
  auth: AuthChoice;
  headers: Record<string, string>;
  body: Buffer | undefined;
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];

// Query keys routes read; the route's own schema adds its keys.
const COMMON_QUERY_KEYS = ['access_token', 'limit', 'from', 'to', 'since', 'timeout', 'dir', 'filter', 'via', 'server_name', 'server', 'ts', 'user_id', 'version', 'ver'];

const HOSTILE_NUMBERS = ['-1', '0', '1', '1e999', '-1e999', '99999999999999999999', '9007199254740993', '1.5', 'NaN', 'abc', '', '%20', '0x10', '+1', '1,2', '00001', '%201'];

const BAD_AUTH_HEADERS = [
  'Bearer', 'Bearer ', 'Bearer  ', 'Bearer a b', 'bearer x', 'Basic dXNlcjpwYXNz', 'Bearer ' + 'x'.repeat(8000), 'Bearer syt_fake_token',
  'Bearer \u00e9\u00ff', 'X-Matrix', 'X-Matrix ', 'X-Matrix origin=', 'X-Matrix origin="a",key="ed25519:x",sig="y"', 'X-Matrix origin=a,origin=b,key=k,sig=s',
  'X-Matrix origin="127.0.0.1:1",key="ed25519:a",sig="AAAA"', 'X-Matrix origin="localhost:1",destination="elsewhere",key="ed25519:a",sig="AAAA"',
  'X-Matrix origin="\\"",key="ed25519:a",sig="AAAA"', 'X-Matrix origin="__proto__",key="ed25519:a",sig="AAAA"', 'X-Matrix origin="x', 'X-Matrix ,,,,',
  'X-Matrix origin="a:b:c",key="constructor",sig="!!"', 'Negotiate abc',
];

const CONTENT_TYPES = [
  'text/plain', 'application/json; charset=utf-16', 'application/json; charset=latin1', 'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x', 'application/octet-stream', ';;;', 'application/json; charset=',
];

/** Splits an Express 5 path into literal text, `:params` and `{…}` optional groups. */
function pathArbitrary(path: string, paramValue: (name: string) => fc.Arbitrary<string>): fc.Arbitrary<string> {
  const parts: fc.Arbitrary<string>[] = [];
  const re = /\{([^}]*)\}|:([A-Za-z_][A-Za-z0-9_]*)|([^{:]+)/g;
  for (const m of path.matchAll(re)) {
    if (m[1] !== undefined) {
      const inner = pathArbitrary(m[1], paramValue);
      parts.push(fc.option(inner, { nil: '' }));
    } else if (m[2] !== undefined) {
      parts.push(paramValue(m[2]));
    } else {
      parts.push(fc.constant(m[3]!));
    }
  }
  return fc.tuple(...parts).map((p) => p.join(''));
}

/** The value of one param: realistic (so handlers run) or, when hostile, sometimes anything at all. */
function paramArbitrary(name: string, stringsFor: StringsFor, hostile: boolean): fc.Arbitrary<string> {
  const real = fc.constantFrom(...stringsFor(name));
  if (!hostile) return real.map(percentEncode);
  return encodedComponent(fc.oneof({ weight: 1, arbitrary: real }, { weight: 2, arbitrary: hostileString() }));
}

function queryArbitrary(route: RouteDefinition, stringsFor: StringsFor, hostile: boolean): fc.Arbitrary<string> {
  const own = [...schemaKeys(route.query as z.ZodType | undefined)];
  if (!hostile) {
    if (own.length === 0) return fc.constant('');
    const pair = fc.constantFrom(...own).chain((k) => fc.constantFrom(...stringsFor(k)).map((v) => `${k}=${percentEncode(v)}`));
    return fc.uniqueArray(pair, { maxLength: 3, selector: (p) => p.split('=')[0] }).map((pairs) => (pairs.length ? `?${pairs.join('&')}` : ''));
  }
  const keys = [...new Set([...own, ...COMMON_QUERY_KEYS])];
  const key = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...keys) },
    { weight: 1, arbitrary: fc.constantFrom(...keys).map((k) => `${k}[]`) },
    { weight: 1, arbitrary: fc.constantFrom(...keys).map((k) => `${k}[a]`) },
    { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'hasOwnProperty', '', '%', '%zz') },
  );
  const value = (k: string) =>
    fc.oneof(
      { weight: 3, arbitrary: encodedComponent(fc.constantFrom(...stringsFor(k))) },
      { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_NUMBERS) },
      { weight: 2, arbitrary: encodedComponent(hostileString()) },
    );
  const pair = key.chain((k) => fc.oneof(value(k).map((v) => `${k}=${v}`), fc.constant(k)));
  return fc.array(pair, { minLength: 1, maxLength: 6 }).map((pairs) => `?${pairs.join('&')}`);
}

/** Replaces the n-th JSON value in `json` with raw text (a number JSON.stringify never writes, a lone surrogate …). */
function splice(json: string, n: number, raw: Buffer): Buffer {
  const values = [...json.matchAll(/[:[,](\s*)("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*|true|false|null)/g)];
  if (values.length === 0) return Buffer.concat([Buffer.from(json.slice(0, -1) + (json.length > 2 ? ',' : '') + '"x":'), raw, Buffer.from('}')]);
  const m = values[n % values.length]!;
  const start = m.index! + 1 + m[1]!.length;
  return Buffer.concat([Buffer.from(json.slice(0, start)), raw, Buffer.from(json.slice(start + m[2]!.length))]);
}

const json = (v: unknown) => JSON.stringify(v) ?? 'null';

function bodyArbitrary(route: RouteDefinition, stringsFor: StringsFor, hostile: boolean): fc.Arbitrary<Buffer | undefined> {
  const schema = (route.body as z.ZodType | undefined) ?? z.looseObject({});
  if (!hostile) return fromSchema(schema, stringsFor, false).map((v) => Buffer.from(json(v)));
  const shaped = fc.oneof(fromSchema(schema, stringsFor, true), fromSchema(schema, stringsFor, false));
  const rawValue = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...RAW_JSON_VALUES).map((s) => Buffer.from(s)) },
    { weight: 1, arbitrary: fc.constantFrom(...INVALID_UTF8).map((b) => Buffer.concat([Buffer.from('"'), b, Buffer.from('"')])) },
  );
  return fc.oneof(
    { weight: 4, arbitrary: fromSchema(schema, stringsFor, true).map((v) => Buffer.from(json(v))) },
    { weight: 1, arbitrary: hostileJson(stringsFor('')).map((v) => Buffer.from(json(v))) },
    { weight: 4, arbitrary: fc.tuple(shaped, fc.nat(), rawValue).map(([v, n, raw]) => splice(json(v), n, raw)) },
    { weight: 1, arbitrary: fc.constantFrom(...RAW_BODIES) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

function authArbitrary(route: RouteDefinition, hostile: boolean): fc.Arbitrary<AuthChoice> {
  const good = fc.constant<AuthChoice>({ kind: route.auth === 'server' ? 'signed' : 'valid' });
  if (!hostile) return good;
  const bad = fc.oneof(
    fc.constantFrom(...BAD_AUTH_HEADERS),
    hostileString().map((s) => `Bearer ${[...s].filter((c) => /^[\x20-\x7e]$/.test(c)).join('')}`),
  ).map((value): AuthChoice => ({ kind: 'header', value }));
  if (route.auth === 'server') {
    return fc.oneof(
      { weight: 1, arbitrary: fc.constant<AuthChoice>({ kind: 'none' }) },
      { weight: 3, arbitrary: bad },
      { weight: 1, arbitrary: fc.constant<AuthChoice>({ kind: 'valid' }) },
    );
  }
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant<AuthChoice>({ kind: 'queryToken' }) },
    { weight: 1, arbitrary: fc.constant<AuthChoice>({ kind: 'none' }) },
    { weight: 3, arbitrary: bad },
  );
}

function headerArbitrary(hostile: boolean): fc.Arbitrary<Record<string, string>> {
  if (!hostile) return fc.constant({ 'content-type': 'application/json' });
  const contentType = fc.option(fc.constantFrom(...CONTENT_TYPES), { nil: undefined, freq: 4 });
  const encoding = fc.option(fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-unknown', 'gzip, gzip'), { freq: 3 });
  return fc.tuple(contentType, encoding).map(([type, enc]) => ({
    ...(type !== undefined ? { 'content-type': type } : {}),
    ...(enc !== null ? { 'content-encoding': enc } : {}),
  }));
}

type Aspect = 'body' | 'path' | 'query' | 'auth' | 'headers' | 'method';

// Mostly one hostile aspect at a time, so the rest of the request is good enough to reach handler logic.
const FOCUS = fc.oneof(
  { weight: 5, arbitrary: fc.constant<Aspect[]>(['body']) },
  { weight: 3, arbitrary: fc.constant<Aspect[]>(['path']) },
  { weight: 2, arbitrary: fc.constant<Aspect[]>(['query']) },
  { weight: 1, arbitrary: fc.constant<Aspect[]>(['auth']) },
  { weight: 1, arbitrary: fc.constant<Aspect[]>(['headers']) },
  { weight: 1, arbitrary: fc.constant<Aspect[]>(['method']) },
  { weight: 2, arbitrary: fc.constant<Aspect[]>([]) },
  { weight: 2, arbitrary: fc.subarray<Aspect>(['body', 'path', 'query', 'auth', 'headers', 'method'], { minLength: 2 }) },
);

/** The route's path with the first realistic value for each param, optional groups left out. */
function plainPath(route: RouteDefinition, stringsFor: StringsFor): string {
  return route.path.replace(/\{[^}]*\}/g, '').replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, (_m, name: string) => percentEncode(stringsFor(name)[0] ?? 'x'));
}

// Bodies every route that takes one is sent at least once, whatever the seed: the classic breakers.
const FIXED_BODIES: ReadonlyArray<{ body: Buffer; headers?: Record<string, string> }> = [
  { body: Buffer.from('hello'), headers: { 'content-encoding': 'gzip' } },
  { body: Buffer.from('{"a":1}'), headers: { 'content-encoding': 'deflate' } },
  { body: Buffer.from('{"a":'.repeat(5000) + '1' + '}'.repeat(5000)) },
  { body: Buffer.from('{"body":"\\ud800","msgtype":"m.text","x":1e999,"y":1.5}') },
  { body: Buffer.from('{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}') },
  { body: Buffer.concat([Buffer.from('{"body":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]) },
  { body: Buffer.from('[]') },
];

/** Cases every route gets before the random ones: fixed breakers (bodies, encodings, `..` and bad %-escapes in the path). */
export function fixedCases(route: RouteDefinition, stringsFor: StringsFor): FuzzCase[] {
  const target = route.prefixes[0]! + plainPath(route, stringsFor);
  const auth: AuthChoice = { kind: route.auth === 'server' ? 'signed' : 'valid' };
  const json = { 'content-type': 'application/json' };
  const cases: FuzzCase[] = [];
  if (route.method === 'POST' || route.method === 'PUT') {
    for (const f of FIXED_BODIES) cases.push({ method: route.method, target, auth, headers: { ...json, ...f.headers }, body: f.body });
  }
  if (route.path.includes(':')) {
    const params = (replacement: string) => route.prefixes[0]! + route.path.replace(/\{[^}]*\}/g, '').replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, replacement);
    for (const bad of ['..', '%ED%A0%80', '%zz']) cases.push({ method: route.method, target: params(bad), auth, headers: json, body: undefined });
  }
  return cases;
}

/** Every hostile request this route can be sent. */
export function caseArbitrary(route: RouteDefinition, stringsFor: StringsFor): fc.Arbitrary<FuzzCase> {
  return FOCUS.chain((aspects) => {
    const bad = (a: Aspect) => aspects.includes(a);
    const sendsBody = route.method === 'POST' || route.method === 'PUT';
    const body = sendsBody || bad('body') ? bodyArbitrary(route, stringsFor, bad('body')) : fc.constant(undefined);
    return fc.record({
      method: bad('method') ? fc.constantFrom(...METHODS) : fc.constant(route.method),
      prefix: fc.constantFrom(...route.prefixes),
      path: pathArbitrary(route.path, (name) => paramArbitrary(name, stringsFor, bad('path'))),
      query: queryArbitrary(route, stringsFor, bad('query')),
      auth: authArbitrary(route, bad('auth')),
      headers: headerArbitrary(bad('headers')),
      body,
    });
  }).map(({ method, prefix, path, query, auth, headers, body }) => ({
    method,
    // A long poll is meant to wait: a timeout in the query is kept short so waiting is not mistaken for hanging.
    target: prefix + path + query.replace(/([?&]timeout=)(\d{4,})/g, (_s, k: string) => `${k}1000`),
    auth,
    headers,
    body,
  }));
}
