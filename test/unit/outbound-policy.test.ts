import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { OutboundPolicy, parseCidr } from '../../src/net/outboundPolicy.js';

describe('outbound address policy', () => {
  const defaults = new OutboundPolicy();

  it.each([
    ['127.0.0.1', false],
    ['127.255.255.254', false],
    ['10.0.0.1', false],
    ['172.16.0.1', false],
    ['172.31.255.255', false],
    ['172.32.0.1', true],
    ['192.168.1.1', false],
    ['100.64.0.1', false],
    ['100.127.255.255', false],
    ['100.128.0.1', true],
    ['169.254.169.254', false],
    ['192.0.0.8', false],
    ['192.0.2.1', false],
    ['198.18.0.1', false],
    ['198.51.100.7', false],
    ['203.0.113.9', false],
    ['224.0.0.251', false],
    ['239.255.255.250', false],
    ['0.0.0.0', false],
    ['::', false],
    ['::1', false],
    ['::ffff:127.0.0.1', false],
    ['::ffff:7f00:1', false],
    ['::ffff:10.0.0.1', false],
    ['::ffff:169.254.169.254', false],
    ['::127.0.0.1', false],
    ['2002:7f00:1::', false],
    ['2002:a00:1::1', false],
    ['fe80::1', false],
    ['fc00::1', false],
    ['fd12:3456::1', false],
    ['fec0::1', false],
    ['ff02::1', false],
    ['2001:db8::1', false],
    ['8.8.8.8', true],
    ['1.1.1.1', true],
    ['::ffff:8.8.8.8', true],
    ['2606:4700:4700::1111', true],
    ['2a01:4f8::1', true],
    ['not an address', false],
  ])('%s allowed: %s', (address, allowed) => {
    expect(defaults.allows(address)).toBe(allowed);
  });

  it('lets the whitelist through, in every IPv6 spelling, but never 0.0.0.0 or ::', () => {
    const p = new OutboundPolicy({ whitelist: ['127.0.0.0/8', '10.1.2.3', '0.0.0.0/0', '::/0'] });
    expect(p.allows('127.0.0.1')).toBe(true);
    expect(p.allows('::ffff:127.0.0.1')).toBe(true);
    expect(p.allows('10.1.2.3')).toBe(true);
    expect(p.allows('0.0.0.0')).toBe(false);
    expect(p.allows('::')).toBe(false);
  });

  it('replaces the default list with ip_range_blacklist', () => {
    const p = new OutboundPolicy({ blacklist: ['203.0.113.0/24'] });
    expect(p.allows('127.0.0.1')).toBe(true);
    expect(p.allows('203.0.113.5')).toBe(false);
    expect(p.allows('::ffff:203.0.113.5')).toBe(false);
    expect(p.allows('0.0.0.0')).toBe(false);
  });

  it('refuses a name when any of its addresses is blocked, and answers both lookup forms', async () => {
    const answers: Record<string, LookupAddress[]> = {
      public: [{ address: '93.184.215.14', family: 4 }],
      mixed: [{ address: '93.184.215.14', family: 4 }, { address: '10.0.0.1', family: 4 }],
    };
    const p = new OutboundPolicy({ resolve: (name, _opts, cb) => cb(null, answers[name] ?? []) });
    const one = (name: string) =>
      new Promise<unknown>((resolve) => p.lookup(name, {}, (err, address, family) => resolve(err ? (err as { code?: string }).code : [address, family])));
    const all = (name: string) => new Promise<unknown>((resolve) => p.lookup(name, { all: true }, (err, addresses) => resolve(err ? (err as { code?: string }).code : addresses)));
    expect(await one('public')).toEqual(['93.184.215.14', 4]);
    expect(await all('public')).toEqual(answers.public);
    expect(await one('mixed')).toBe('EOUTBOUNDBLOCKED');
    expect(await all('mixed')).toBe('EOUTBOUNDBLOCKED');
    expect(await one('nothing')).toBe('ENOTFOUND');
  });

  it('parses ranges and refuses malformed ones at config load', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('::1')).toEqual({ address: '::1', prefix: 128, family: 'ipv6' });
    for (const bad of ['10.0.0.0/33', 'fe80::/129', 'example.org', '10.0.0/8', '10.0.0.0/', '10.0.0.0/-1']) expect(() => parseCidr(bad)).toThrow();
    const base = { server_name: 'example.org', signing_key_path: '/tmp/k', media_store_path: '/tmp/m' };
    expect(() => parseConfig({ ...base, ip_range_whitelist: ['10.0.0.0/33'] }, 'test')).toThrow(ConfigError);
    expect(() => parseConfig({ ...base, ip_range_blacklist: ['nope'] }, 'test')).toThrow(ConfigError);
    expect(parseConfig({ ...base, ip_range_blacklist: ['10.0.0.0/8'], ip_range_whitelist: ['10.1.0.0/16'] }, 'test')).toMatchObject({
      ip_range_blacklist: ['10.0.0.0/8'],
      ip_range_whitelist: ['10.1.0.0/16'],
    });
  });
});
