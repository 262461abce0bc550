import { describe, expect, it } from 'vitest';
import { ServerResolver, wellKnownCacheMs, type SrvRecord, type WellKnownResponse } from '../../src/federation/discovery.js';

const HOUR = 3600_000;

/** A resolver over fake DNS and a fake .well-known fetch, with a clock the test moves. */
function setup(options: { wellKnown?: Record<string, WellKnownResponse | undefined>; srv?: Record<string, SrvRecord[]> } = {}) {
  const calls = { wellKnown: [] as string[], srv: [] as string[] };
  const clock = { t: 1_700_000_000_000 };
  const resolver = new ServerResolver({
    now: () => clock.t,
    fetchWellKnown: async (host) => {
      calls.wellKnown.push(host);
      return options.wellKnown?.[host];
    },
    resolveSrv: async (name) => {
      calls.srv.push(name);
      const records = options.srv?.[name];
      if (!records) throw Object.assign(new Error('queryNotFound'), { code: 'ENOTFOUND' });
      return records;
    },
  });
  return { resolver, calls, clock };
}

const wk = (server: unknown, headers: Record<string, string> = {}, status = 200): WellKnownResponse => ({
  status,
  headers,
  body: { 'm.server': server },
});
const srv = (name: string, port: number, priority = 10, weight = 5): SrvRecord => ({ name, port, priority, weight });

describe('server discovery (spec "Resolving server names")', () => {
  it('1. IP literals are used directly, default port 8448, no SNI, no lookups', async () => {
    const { resolver, calls } = setup();
    expect(await resolver.resolve('192.0.2.7')).toEqual({
      serverName: '192.0.2.7',
      connectHost: '192.0.2.7',
      port: 8448,
      hostHeader: '192.0.2.7',
      tlsServername: undefined,
    });
    expect(await resolver.resolve('[2001:db8::1]:8449')).toMatchObject({ connectHost: '2001:db8::1', port: 8449, hostHeader: '[2001:db8::1]:8449', tlsServername: undefined });
    expect(calls).toEqual({ wellKnown: [], srv: [] });
  });

  it('2. a host with an explicit port is used directly; Host carries the port, the certificate the host', async () => {
    const { resolver, calls } = setup();
    expect(await resolver.resolve('example.org:1234')).toMatchObject({ connectHost: 'example.org', port: 1234, hostHeader: 'example.org:1234', tlsServername: 'example.org' });
    expect(calls).toEqual({ wellKnown: [], srv: [] });
  });

  it('3.2 .well-known delegation to a host with a port', async () => {
    const { resolver, calls } = setup({ wellKnown: { 'example.org': wk('matrix.example.net:9000') } });
    expect(await resolver.resolve('example.org')).toEqual({
      serverName: 'example.org',
      connectHost: 'matrix.example.net',
      port: 9000,
      hostHeader: 'matrix.example.net:9000',
      tlsServername: 'matrix.example.net',
    });
    expect(calls.srv).toEqual([]);
  });

  it('3.1 .well-known delegation to an IP literal', async () => {
    const { resolver } = setup({ wellKnown: { 'example.org': wk('198.51.100.4') } });
    expect(await resolver.resolve('example.org')).toMatchObject({ connectHost: '198.51.100.4', port: 8448, hostHeader: '198.51.100.4', tlsServername: undefined });
  });

  it('3.3 delegated host without port: _matrix-fed._tcp SRV; Host and certificate are the delegated name', async () => {
    const { resolver, calls } = setup({
      wellKnown: { 'example.org': wk('matrix.example.net') },
      srv: { '_matrix-fed._tcp.matrix.example.net': [srv('backup.example.net.', 8449, 20), srv('fed.example.net.', 443, 10)] },
    });
    expect(await resolver.resolve('example.org')).toMatchObject({ connectHost: 'fed.example.net', port: 443, hostHeader: 'matrix.example.net', tlsServername: 'matrix.example.net' });
    expect(calls.srv).toEqual(['_matrix-fed._tcp.matrix.example.net']);
  });

  it('3.4 falls back to the deprecated _matrix._tcp SRV', async () => {
    const { resolver, calls } = setup({
      wellKnown: { 'example.org': wk('matrix.example.net') },
      srv: { '_matrix._tcp.matrix.example.net': [srv('old.example.net', 8450)] },
    });
    expect(await resolver.resolve('example.org')).toMatchObject({ connectHost: 'old.example.net', port: 8450, hostHeader: 'matrix.example.net' });
    expect(calls.srv).toEqual(['_matrix-fed._tcp.matrix.example.net', '_matrix._tcp.matrix.example.net']);
  });

  it('3.5 delegated host without SRV: port 8448', async () => {
    const { resolver } = setup({ wellKnown: { 'example.org': wk('matrix.example.net') } });
    expect(await resolver.resolve('example.org')).toMatchObject({ connectHost: 'matrix.example.net', port: 8448, hostHeader: 'matrix.example.net', tlsServername: 'matrix.example.net' });
  });

  it('4. without .well-known: SRV on the server name; Host is the server name', async () => {
    const { resolver, calls } = setup({ srv: { '_matrix-fed._tcp.example.org': [srv('.', 0, 1), srv('fed.example.org', 8443)] } });
    expect(await resolver.resolve('example.org')).toMatchObject({ connectHost: 'fed.example.org', port: 8443, hostHeader: 'example.org', tlsServername: 'example.org' });
    expect(calls.wellKnown).toEqual(['example.org']);
  });

  it.each<[string, WellKnownResponse | undefined]>([
    ['unreachable', undefined],
    ['404', wk('x.example', {}, 404)],
    ['no m.server', { status: 200, headers: {}, body: { other: 1 } }],
    ['not an object', { status: 200, headers: {}, body: 'm.server' }],
    ['invalid server name', wk('not a name')],
    ['m.server not a string', wk(8448)],
  ])('6. .well-known %s and no SRV: the server name on port 8448', async (_name, res) => {
    const { resolver } = setup({ wellKnown: { 'example.org': res } });
    expect(await resolver.resolve('example.org')).toEqual({
      serverName: 'example.org',
      connectHost: 'example.org',
      port: 8448,
      hostHeader: 'example.org',
      tlsServername: 'example.org',
    });
  });

  it('rejects invalid server names', async () => {
    const { resolver } = setup();
    await expect(resolver.resolve('bad name')).rejects.toThrow(/invalid server name/);
  });

  it('caches .well-known per Cache-Control, and looks again after it expires', async () => {
    const { resolver, calls, clock } = setup({ wellKnown: { 'example.org': wk('m.example.net:1', { 'cache-control': 'public, max-age=600' }) } });
    await resolver.resolve('example.org');
    clock.t += 9 * 60_000;
    await resolver.resolve('example.org');
    expect(calls.wellKnown).toHaveLength(1);
    clock.t += 2 * 60_000;
    await resolver.resolve('example.org');
    expect(calls.wellKnown).toHaveLength(2);
  });

  it('caches failures with exponential backoff', async () => {
    const { resolver, calls, clock } = setup();
    await resolver.resolve('example.org');
    clock.t += 2 * 60_000 + 1;
    await resolver.resolve('example.org');
    expect(calls.wellKnown).toHaveLength(2);
    clock.t += 3 * 60_000; // the second failure is cached for 4 minutes
    await resolver.resolve('example.org');
    expect(calls.wellKnown).toHaveLength(2);
    clock.t += 60_000 + 1;
    await resolver.resolve('example.org');
    expect(calls.wellKnown).toHaveLength(3);
  });

  it('resolves one server name once when asked concurrently', async () => {
    const { resolver, calls } = setup({ wellKnown: { 'example.org': wk('m.example.net:1') } });
    await Promise.all([resolver.resolve('example.org'), resolver.resolve('example.org'), resolver.resolve('example.org')]);
    expect(calls.wellKnown).toHaveLength(1);
  });
});

describe('.well-known cache lifetime', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it.each<[string, Record<string, string>, number]>([
    ['default 24 hours', {}, 24 * HOUR],
    ['max-age', { 'cache-control': 'max-age=7200' }, 2 * HOUR],
    ['max-age below the 5 minute floor', { 'cache-control': 'max-age=10' }, 5 * 60_000],
    ['max-age above the 48 hour cap', { 'cache-control': 'max-age=9999999' }, 48 * HOUR],
    ['no-store', { 'cache-control': 'no-store' }, 5 * 60_000],
    ['Expires', { expires: new Date(now + 3 * HOUR).toUTCString() }, 3 * HOUR],
    ['max-age wins over Expires', { 'cache-control': 'max-age=3600', expires: new Date(now + 3 * HOUR).toUTCString() }, HOUR],
    ['unparseable Expires', { expires: 'soon' }, 24 * HOUR],
  ])('%s', (_name, headers, expected) => {
    expect(wellKnownCacheMs(headers, now)).toBe(expected);
  });
});
