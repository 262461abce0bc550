import { describe, expect, it } from 'vitest';
import { privmsgBudget, splitIrcLines } from '../../../src/bridge/irc/splitting.js';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const graphemes = (s: string) => Array.from(new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(s), (g) => g.segment);
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Small deterministic PRNG so the fuzz case is reproducible. */
function prng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * Walks the pieces back over the input: only a whitespace run may vanish between pieces,
 * and every cut must be a grapheme boundary (or a code-point boundary inside an oversized grapheme).
 */
function expectCleanCuts(line: string, pieces: string[], max: number): void {
  const allowed = new Set<number>([0, line.length]);
  let offset = 0;
  for (const g of graphemes(line)) {
    if (bytes(g) > max) {
      let o = offset;
      for (const cp of g) allowed.add((o += cp.length));
    }
    offset += g.length;
    allowed.add(offset);
  }
  let pos = 0;
  for (const piece of pieces) {
    if (!line.startsWith(piece, pos)) {
      // A break swallows the whole whitespace run it happened in.
      const rest = graphemes(line.slice(pos));
      const gap = rest.slice(0, rest.findIndex((g) => !/^\s+$/u.test(g))).join('');
      expect(gap).not.toBe('');
      pos += gap.length;
    }
    expect(line.startsWith(piece, pos)).toBe(true);
    expect(allowed.has(pos)).toBe(true);
    pos += piece.length;
    expect(allowed.has(pos)).toBe(true);
  }
  expect(line.slice(pos)).toMatch(/^\s*$/u);
}

describe('splitIrcLines', () => {
  it('keeps lines that already fit and drops empty lines', () => {
    expect(splitIrcLines(['short', '', 'also short'], 20)).toEqual(['short', 'also short']);
  });

  it('breaks at the last whitespace in the window and drops it', () => {
    expect(splitIrcLines(['hello world this is a test'], 10)).toEqual(['hello', 'world this', 'is a test']);
  });

  it('breaks exactly on a space that falls just past the window', () => {
    expect(splitIrcLines(['aaaaaaaaaa bbb'], 10)).toEqual(['aaaaaaaaaa', 'bbb']);
  });

  it('swallows a whole whitespace run at a break', () => {
    expect(splitIrcLines(['aaaa   \t  bbbbbb'], 8)).toEqual(['aaaa', 'bbbbbb']);
    expect(splitIrcLines(['aaaaaaa \t\t bbbbbb'], 8)).toEqual(['aaaaaaa', 'bbbbbb']);
  });

  it('hard-breaks words longer than the limit', () => {
    expect(splitIrcLines(['abcdefghijklmnopqrstuvwxyz'], 10)).toEqual(['abcdefghij', 'klmnopqrst', 'uvwxyz']);
  });

  it('counts UTF-8 bytes, not UTF-16 units, and never cuts a multibyte character', () => {
    const out = splitIrcLines(['ééééééééé'], 9); // 18 bytes
    expect(out).toEqual(['éééé', 'éééé', 'é']);
    for (const piece of out) expect(bytes(piece)).toBeLessThanOrEqual(9);
  });

  it('never splits a surrogate pair', () => {
    const out = splitIrcLines(['a😀😀😀'], 9); // 1 + 3×4 bytes
    expect(out).toEqual(['a😀😀', '😀']);
  });

  it('keeps grapheme clusters (flags, skin tones, combining marks) together', () => {
    const line = '🇮🇸🇮🇸🇮🇸 👍🏽👍🏽 e\u0301e\u0301e\u0301e\u0301';
    const out = splitIrcLines([line], 16); // flags and toned thumbs are 8 bytes each
    expect(out).toEqual(['🇮🇸🇮🇸', '🇮🇸', '👍🏽👍🏽', 'e\u0301e\u0301e\u0301e\u0301']);
    // A combining accent stays with its base letter instead of filling the last byte of the window.
    expect(splitIrcLines(['aaaaaae\u0301'], 8)).toEqual(['aaaaaa', 'e\u0301']);
  });

  it('falls back to code points for a single grapheme longer than the limit', () => {
    const family = '👨‍👩‍👧‍👦'; // 25 bytes in one grapheme
    const out = splitIrcLines([family], 8);
    expect(out.join('')).toBe(family);
    for (const piece of out) {
      expect(bytes(piece)).toBeLessThanOrEqual(8);
      expect(LONE_SURROGATE.test(piece)).toBe(false);
    }
  });

  it('does not cut an IRC colour code in half', () => {
    expect(splitIrcLines(['abcdefg\x0304,12red'], 10)).toEqual(['abcdefg', '\x0304,12red']);
  });

  it('respects the limit, well-formedness and graphemes on random multilingual text', () => {
    const alphabet = ['a', 'Z', ' ', ' ', 'é', 'ß', '中', '文', '😀', '🇮🇸', '👍🏽', 'e\u0301', 'ก', '\u0e35', '\t'];
    const rand = prng(42);
    for (let n = 0; n < 200; n++) {
      let line = '';
      const len = 1 + Math.floor(rand() * 80);
      for (let i = 0; i < len; i++) line += alphabet[Math.floor(rand() * alphabet.length)];
      const max = 8 + Math.floor(rand() * 30);
      const out = splitIrcLines([line], max);
      for (const piece of out) {
        expect(bytes(piece)).toBeLessThanOrEqual(max);
        expect(piece).not.toBe('');
        expect(LONE_SURROGATE.test(piece)).toBe(false);
      }
      expectCleanCuts(line, out, max);
    }
  });

  it('rejects budgets below 8 bytes', () => {
    expect(() => splitIrcLines(['x'], 7)).toThrow(RangeError);
    expect(() => splitIrcLines(['x'], Number.NaN)).toThrow(RangeError);
    expect(splitIrcLines(['x'], 8)).toEqual(['x']);
  });
});

describe('privmsgBudget', () => {
  it('assumes a 10-char user and 63-char host when unknown', () => {
    // ":alice!" + 10 + "@" + 63 + " PRIVMSG #chan :" → 7 + 10 + 1 + 63 + 16 = 97
    expect(privmsgBudget({ nick: 'alice' }, '#chan')).toBe(512 - 2 - 97);
  });

  it('uses the known user and host', () => {
    // ":alice!~a@h.example PRIVMSG #chan :" is 35 bytes.
    expect(privmsgBudget({ nick: 'alice', user: '~a', host: 'h.example' }, '#chan')).toBe(512 - 2 - 35);
  });

  it('accounts for NOTICE, CTCP ACTION and multibyte targets', () => {
    const base = privmsgBudget({ nick: 'n' }, '#c');
    expect(privmsgBudget({ nick: 'n' }, '#c', 'NOTICE')).toBe(base + 1);
    expect(privmsgBudget({ nick: 'n' }, '#c', 'PRIVMSG', true)).toBe(base - 9);
    expect(privmsgBudget({ nick: 'n' }, '#ç')).toBe(base - 1);
  });

  it('produces pieces that fit in a full 512-byte line', () => {
    const prefix = { nick: 'someone' };
    const budget = privmsgBudget(prefix, '#channel');
    const text = 'word '.repeat(300);
    for (const piece of splitIrcLines([text], budget)) {
      const wire = `:someone!${'u'.repeat(10)}@${'h'.repeat(63)} PRIVMSG #channel :${piece}\r\n`;
      expect(bytes(wire)).toBeLessThanOrEqual(512);
    }
  });
});
