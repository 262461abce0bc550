import { describe, expect, it } from 'vitest';
import { MEDIA_PROXY_PATH, MediaLinks } from '../../../src/bridge/irc/mediaProxy.js';

// The IRC bridge's media links: signed for one mxc:// URI, optionally expiring.

function parts(link: string): [string, string, string, string] {
  const rest = new URL(link).pathname.slice(MEDIA_PROXY_PATH.length + 1).split('/');
  return [rest[0]!, rest[1]!, decodeURIComponent(rest[2]!), rest[3]!];
}

describe('IRC media proxy links', () => {
  it('verifies its own links and nothing else', () => {
    const links = new MediaLinks('k'.repeat(43), 'https://irc.example.org/', 0);
    const link = links.link('mxc://example.org:8448/abcDEF_123', 'a cat.png')!;
    expect(link.startsWith(`https://irc.example.org${MEDIA_PROXY_PATH}/0/`)).toBe(true);
    expect(link.endsWith('/example.org%3A8448/abcDEF_123/a%20cat.png')).toBe(true);
    const [exp, sig, server, id] = parts(link);
    expect(links.verify(exp, sig, server, id)).toBe(true);
    expect(links.verify(exp, sig, server, 'abcDEF_124')).toBe(false);
    expect(links.verify(exp, sig, 'evil.example', id)).toBe(false);
    expect(links.verify('1', sig, server, id)).toBe(false);
    expect(links.verify(exp, sig.slice(1), server, id)).toBe(false);
    expect(new MediaLinks('another key', 'https://irc.example.org', 0).verify(exp, sig, server, id)).toBe(false);
    expect(links.verify(exp, sig, '../..', id)).toBe(false);
    expect(links.link('https://example.org/x', 'x')).toBeUndefined();
    expect(links.link('mxc://example.org/../etc', 'x')).toBeUndefined();
  });

  it('expires links after ttl_seconds', () => {
    let now = 1_700_000_000_000;
    const links = new MediaLinks('key', 'http://127.0.0.1:9898', 60, () => now);
    const [exp, sig, server, id] = parts(links.link('mxc://localhost/abcdef', 'f')!);
    expect(Number(exp)).toBe(1_700_000_060);
    expect(links.verify(exp, sig, server, id)).toBe(true);
    now += 61_000;
    expect(links.verify(exp, sig, server, id)).toBe(false);
  });
});
