import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { addressKey } from '../../src/http/transport.js';

describe('transport limits', () => {
  it('counts IPv4 addresses alone, IPv4-mapped as IPv4, and IPv6 by /64', () => {
    expect(addressKey('203.0.113.7')).toBe('203.0.113.7');
    expect(addressKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressKey('2001:db8:1:2::5')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });

  it('defaults timeouts and connection caps, fills partial timeouts, and refuses headers_ms above request_ms', () => {
    const config = parseConfig({ server_name: 'example.org', http_timeouts: { headers_ms: 10_000 } });
    expect(config.http_timeouts).toEqual({ headers_ms: 10_000, request_ms: 600_000, keep_alive_ms: 65_000 });
    expect(config.max_connections_per_address).toBe(50);
    expect(config.max_connections).toBe(2000);
    expect(config.max_connections_per_address_exempt).toEqual(['127.0.0.0/8', '::1/128']);
    expect(() => parseConfig({ server_name: 'example.org', max_connections_per_address_exempt: ['10.0.0.0/8', 'localhost'] })).toThrow(/exempt/);
    expect(() => parseConfig({ server_name: 'example.org', http_timeouts: { headers_ms: 5000, request_ms: 1000 } })).toThrow(/headers_ms/);
  });
});
