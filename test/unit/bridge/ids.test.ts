import { describe, expect, it } from 'vitest';
import {
  DEFAULT_GHOST_PREFIX,
  escapeForLocalpart,
  ghostLocalpart,
  ircLowerCase,
  isValidChannelName,
  isValidNetworkId,
  isValidNick,
  nextNickCandidate,
  nickFromPattern,
  parseAliasLocalpart,
  parseGhostLocalpart,
  portalAliasLocalpart,
  unescapeLocalpart,
} from '../../../src/bridge/irc/ids.js';

const MATRIX_LOCALPART = /^[a-z0-9._=\-/]+$/;

describe('network ids and case mapping', () => {
  it('accepts only lowercase alphanumerics as network ids', () => {
    expect(isValidNetworkId('libera')).toBe(true);
    expect(isValidNetworkId('oftc2')).toBe(true);
    for (const bad of ['', 'Libera', 'lib_era', 'lib-era', 'lib era', 'ünï']) expect(isValidNetworkId(bad)).toBe(false);
  });

  it('lower-cases per CASEMAPPING', () => {
    expect(ircLowerCase('Nick[A]\\~')).toBe('nick{a}|^');
    expect(ircLowerCase('Nick[A]\\~', 'rfc1459')).toBe('nick{a}|^');
    expect(ircLowerCase('Nick[A]\\~', 'strict-rfc1459')).toBe('nick{a}|~');
    expect(ircLowerCase('Nick[A]\\~', 'ascii')).toBe('nick[a]\\~');
    expect(ircLowerCase('ÄÖÜ')).toBe('ÄÖÜ');
  });
});

describe('localpart escaping', () => {
  it('keeps safe characters and escapes every other UTF-8 byte', () => {
    expect(escapeForLocalpart('abc-1.2/x')).toBe('abc-1.2/x');
    expect(escapeForLocalpart('a_b=c')).toBe('a=5fb=3dc');
    expect(escapeForLocalpart('Ab')).toBe('=41b');
    expect(escapeForLocalpart('{|}^`')).toBe('=7b=7c=7d=5e=60');
    expect(escapeForLocalpart('é😀')).toBe('=c3=a9=f0=9f=98=80');
  });

  it('round-trips arbitrary strings and yields valid Matrix localparts', () => {
    for (const s of ['nick', 'Nick_Name', 'a=b', '[]\\`^{|}', 'ñandú', '中文', '👨‍👩‍👧', 'with space', '=41', '']) {
      const escaped = escapeForLocalpart(s);
      if (s !== '') expect(escaped).toMatch(MATRIX_LOCALPART);
      expect(escaped).not.toContain('_');
      expect(unescapeLocalpart(escaped)).toBe(s);
    }
  });

  it('rejects malformed or non-canonical escapes', () => {
    expect(unescapeLocalpart('=6')).toBeUndefined();
    expect(unescapeLocalpart('=zz')).toBeUndefined();
    expect(unescapeLocalpart('=C3=A9')).toBeUndefined(); // upper-case hex is never produced
    expect(unescapeLocalpart('=61')).toBeUndefined(); // "a" must be literal
    expect(unescapeLocalpart('a_b')).toBeUndefined();
    expect(unescapeLocalpart('=c3')).toBeUndefined(); // truncated UTF-8
    expect(unescapeLocalpart('=ff')).toBeUndefined();
  });
});

describe('ghost localparts', () => {
  it('builds prefix + network + escaped lower-cased nick', () => {
    expect(DEFAULT_GHOST_PREFIX).toBe('irc_');
    expect(ghostLocalpart('irc_', 'libera', 'Alice')).toBe('irc_libera_alice');
    expect(ghostLocalpart('irc_', 'libera', 'Alice[Away]')).toBe('irc_libera_alice=7baway=7d');
    expect(ghostLocalpart('irc_', 'libera', 'ALICE{away}')).toBe(ghostLocalpart('irc_', 'libera', 'alice[AWAY]'));
  });

  it('round-trips through parseGhostLocalpart', () => {
    for (const nick of ['alice', 'Bob_', '[m]user', 'x|y^z', 'Nick-1', 'a`b\\c']) {
      const localpart = ghostLocalpart('irc_', 'oftc', nick);
      expect(localpart).toMatch(MATRIX_LOCALPART);
      expect(parseGhostLocalpart('irc_', localpart)).toEqual({ network: 'oftc', nickLower: ircLowerCase(nick) });
    }
  });

  it('works with other prefixes, including one without an underscore', () => {
    expect(parseGhostLocalpart('_bridge_', ghostLocalpart('_bridge_', 'net', 'Zed'))).toEqual({ network: 'net', nickLower: 'zed' });
    expect(parseGhostLocalpart('i', ghostLocalpart('i', 'net', 'a_b'))).toEqual({ network: 'net', nickLower: 'a_b' });
  });

  it('rejects localparts that are not ghosts', () => {
    expect(parseGhostLocalpart('irc_', 'alice')).toBeUndefined();
    expect(parseGhostLocalpart('irc_', 'irc_libera')).toBeUndefined();
    expect(parseGhostLocalpart('irc_', 'irc_libera_')).toBeUndefined();
    expect(parseGhostLocalpart('irc_', 'irc__alice')).toBeUndefined();
    expect(parseGhostLocalpart('irc_', 'irc_lib-era_alice')).toBeUndefined();
    expect(parseGhostLocalpart('irc_', 'irc_libera_=41lice')).toBeUndefined(); // upper-case nick
    expect(parseGhostLocalpart('irc_', 'irc_libera_a_b')).toBeUndefined();
  });
});

describe('portal alias localparts', () => {
  it('maps #foo without escaping the leading #', () => {
    expect(portalAliasLocalpart('irc_', 'libera', '#Foo')).toBe('irc_libera_foo');
    expect(portalAliasLocalpart('irc_', 'libera', '#foo[1]')).toBe('irc_libera_foo=7b1=7d');
  });

  it('escapes everything after the first # for other prefixes', () => {
    expect(portalAliasLocalpart('irc_', 'libera', '##x')).toBe('irc_libera_=23x');
    expect(portalAliasLocalpart('irc_', 'libera', '#&x')).toBe('irc_libera_=26x');
  });

  it('fully escapes channels not starting with #, distinct from #-channels', () => {
    expect(portalAliasLocalpart('irc_', 'libera', '&local')).toBe('irc_libera__=26local');
    expect(portalAliasLocalpart('irc_', 'libera', '&x')).not.toBe(portalAliasLocalpart('irc_', 'libera', '#&x'));
  });

  it('round-trips through parseAliasLocalpart (lower-cased)', () => {
    for (const channel of ['#foo', '#Foo-Bar', '##x', '#&x', '&local', '#ünï.code', '#a_b=c', '#[weird]']) {
      const localpart = portalAliasLocalpart('irc_', 'net', channel);
      expect(localpart).toMatch(MATRIX_LOCALPART);
      expect(parseAliasLocalpart('irc_', localpart)).toEqual({ network: 'net', channel: ircLowerCase(channel) });
    }
  });

  it('rejects alias localparts it would never produce', () => {
    expect(parseAliasLocalpart('irc_', 'irc_net_')).toBeUndefined();
    expect(parseAliasLocalpart('irc_', 'irc_net__=23x')).toBeUndefined(); // "#x" is never in the doubled form
    expect(parseAliasLocalpart('irc_', 'irc_net_a=20b')).toBeUndefined(); // space
    expect(parseAliasLocalpart('irc_', 'other_net_foo')).toBeUndefined();
    expect(parseAliasLocalpart('irc_', 'irc_NET_foo')).toBeUndefined();
  });
});

describe('channel and nick validation', () => {
  it('validates channel names', () => {
    expect(isValidChannelName('#a')).toBe(true);
    expect(isValidChannelName('&local')).toBe(true);
    expect(isValidChannelName('#' + 'x'.repeat(49))).toBe(true);
    expect(isValidChannelName('#' + 'x'.repeat(50))).toBe(false);
    for (const bad of ['#', 'foo', '+foo', '#a b', '#a,b', '#a\x07', '#a\r', '#a\n', '#a\0', '']) expect(isValidChannelName(bad)).toBe(false);
  });

  it('validates nicks per RFC 2812', () => {
    for (const good of ['a', 'Alice', '[m]', '`x', '_', 'a-1', '^{|}\\']) expect(isValidNick(good, 9)).toBe(true);
    for (const bad of ['', '1abc', '-a', 'a b', 'a.b', 'é', 'a!b', 'a@b']) expect(isValidNick(bad, 9)).toBe(false);
    expect(isValidNick('abcdefghij', 9)).toBe(false);
  });
});

describe('nickFromPattern', () => {
  it('substitutes the display name and keeps the literal suffix', () => {
    expect(nickFromPattern('$DISPLAY[m]', { displayname: 'Alice', localpart: 'alice' }, 30)).toBe('Alice[m]');
  });

  it('falls back to the localpart when there is no usable display name', () => {
    expect(nickFromPattern('$DISPLAY[m]', { localpart: 'bob' }, 30)).toBe('bob[m]');
    expect(nickFromPattern('$DISPLAY[m]', { displayname: '🦊✨', localpart: 'bob' }, 30)).toBe('bob[m]');
  });

  it('removes spaces and invalid characters, folding accents', () => {
    expect(nickFromPattern('$DISPLAY', { displayname: 'Jörg Müller (work)', localpart: 'j' }, 30)).toBe('JorgMullerwork');
  });

  it('truncates the variable part, not the literal parts', () => {
    expect(nickFromPattern('$DISPLAY[m]', { displayname: 'Bartholomew', localpart: 'b' }, 9)).toBe('Bartho[m]');
    expect(nickFromPattern('M-$LOCALPART', { localpart: 'verylongusername' }, 9)).toBe('M-verylon');
  });

  it('prefixes M when the first character is invalid, still within maxLen', () => {
    expect(nickFromPattern('$LOCALPART', { localpart: '123456789' }, 9)).toBe('M12345678');
    expect(nickFromPattern('-$LOCALPART', { localpart: 'x' }, 9)).toBe('M-x');
  });

  it('always returns a valid nick', () => {
    const cases: Array<[string, { displayname?: string; localpart: string }]> = [
      ['$DISPLAY', { displayname: '!!!', localpart: '...' }],
      ['', { localpart: 'alice' }],
      ['@@@', { localpart: '9' }],
      ['$LOCALPART$DISPLAY', { displayname: 'Ümlaut Ünïcode', localpart: '=2e' }],
    ];
    for (const [pattern, vars] of cases) {
      for (const maxLen of [1, 2, 9, 30]) {
        const nick = nickFromPattern(pattern, vars, maxLen);
        expect(isValidNick(nick, maxLen), `${pattern} ${JSON.stringify(vars)} ${maxLen} → ${nick}`).toBe(true);
      }
    }
    expect(nickFromPattern('', { localpart: 'alice' }, 9)).toBe('Malice');
    // Stable per localpart, even when nothing of it is usable.
    expect(nickFromPattern('$DISPLAY', { localpart: '...' }, 9)).toBe(nickFromPattern('$DISPLAY', { localpart: '...' }, 9));
    expect(nickFromPattern('$DISPLAY', { localpart: '...' }, 9)).not.toBe(nickFromPattern('$DISPLAY', { localpart: '..' }, 9));
  });

  it('rejects maxLen below 1', () => {
    expect(() => nickFromPattern('$DISPLAY', { localpart: 'a' }, 0)).toThrow(RangeError);
  });
});

describe('nextNickCandidate', () => {
  it('appends _ then digits', () => {
    expect([0, 1, 2, 3, 10].map((n) => nextNickCandidate('alice', n, 30))).toEqual(['alice', 'alice_', 'alice2', 'alice3', 'alice10']);
  });

  it('replaces the tail when the nick is already at maxLen', () => {
    expect([1, 2, 10].map((n) => nextNickCandidate('alice', n, 5))).toEqual(['alic_', 'alic2', 'ali10']);
  });

  it('gives distinct, valid nicks within maxLen', () => {
    const seen = new Set<string>();
    for (let attempt = 0; attempt < 50; attempt++) {
      const nick = nextNickCandidate('[m]longnick', attempt, 9);
      expect(isValidNick(nick, 9)).toBe(true);
      seen.add(nick);
    }
    expect(seen.size).toBe(50);
  });
});
