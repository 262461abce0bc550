// Splitting outgoing text into IRC lines that fit the 512-byte message limit.

/** Smallest budget we accept: any single code point (≤ 4 bytes) must always fit. */
const MIN_MAX_BYTES = 8;

const IRC_LINE_BYTES = 512;
const CRLF_BYTES = 2;
/** USERLEN most servers enforce; the relayed prefix may be this long even when we do not know it. */
const DEFAULT_USER_LEN = 10;
/** Longest hostname (RFC 1035 label limit) a server may show for us. */
const DEFAULT_HOST_LEN = 63;
/** `\x01ACTION ` + trailing `\x01`. */
const CTCP_ACTION_BYTES = 9;

// Colour codes are kept atomic so a break never turns "\x0304" into "\x03" + visible "04".
const COLOUR_CODE = /(\x03\d{1,2}(?:,\d{1,2})?|\x04[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)/;

const GRAPHEMES = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

interface Unit {
  text: string;
  bytes: number;
  space: boolean;
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function makeUnit(text: string): Unit {
  return { text, bytes: utf8Length(text), space: /^\s+$/u.test(text) };
}

/** Smallest unbreakable pieces: graphemes, or code points for a grapheme that alone exceeds the budget. */
function unitsOf(line: string, maxBytes: number): Unit[] {
  const units: Unit[] = [];
  line.split(COLOUR_CODE).forEach((part, idx) => {
    if (part === '') return;
    const pieces = idx % 2 === 1 ? [part] : Array.from(GRAPHEMES.segment(part), (s) => s.segment);
    for (const piece of pieces) {
      const unit = makeUnit(piece);
      if (unit.bytes <= maxBytes) units.push(unit);
      else for (const cp of piece) units.push(makeUnit(cp));
    }
  });
  return units;
}

function join(units: readonly Unit[], from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += (units[i] as Unit).text;
  return s;
}

/** Index of the last whitespace unit in [from, to], or -1. */
function lastSpace(units: readonly Unit[], from: number, to: number): number {
  for (let k = to; k >= from; k--) if (units[k]?.space === true) return k;
  return -1;
}

function splitLine(line: string, maxBytes: number): string[] {
  if (utf8Length(line) <= maxBytes) return [line];
  const units = unitsOf(line, maxBytes);
  const pieces: string[] = [];
  let i = 0;
  while (i < units.length) {
    let j = i;
    let used = 0;
    while (j < units.length && used + (units[j] as Unit).bytes <= maxBytes) used += (units[j++] as Unit).bytes;
    if (j === units.length) {
      pieces.push(join(units, i, j));
      break;
    }
    // units[j] is the first unit that does not fit: breaking on it is as good as breaking before it.
    const k = lastSpace(units, i + 1, j);
    if (k === -1) {
      pieces.push(join(units, i, j));
      i = j;
      continue;
    }
    // Drop the whole whitespace run at the break so no piece starts or ends with break spaces.
    let start = k;
    while (start - 1 > i && (units[start - 1] as Unit).space) start--;
    pieces.push(join(units, i, start));
    i = k + 1;
    while (i < units.length && (units[i] as Unit).space) i++;
  }
  return pieces.filter((p) => p !== '');
}

/**
 * Splits lines so each piece is at most `maxBytes` of UTF-8, preferring to break at whitespace.
 * Empty lines are dropped because IRC cannot send an empty PRIVMSG.
 */
export function splitIrcLines(lines: string[], maxBytes: number): string[] {
  if (!(maxBytes >= MIN_MAX_BYTES)) throw new RangeError(`maxBytes must be at least ${MIN_MAX_BYTES}, got ${maxBytes}`);
  const limit = Math.floor(maxBytes);
  const out: string[] = [];
  for (const line of lines) {
    if (line === '') continue;
    out.push(...splitLine(line, limit));
  }
  return out;
}

export interface IrcPrefix {
  nick: string;
  user?: string;
  host?: string;
}

/**
 * Bytes available for message text in `:nick!user@host PRIVMSG target :text\r\n` as other clients receive it.
 * Unknown user/host are assumed at their maximum so relayed lines never get truncated by the server.
 */
export function privmsgBudget(
  prefix: IrcPrefix,
  target: string,
  command: 'PRIVMSG' | 'NOTICE' = 'PRIVMSG',
  ctcpAction = false,
): number {
  const userLen = prefix.user !== undefined ? utf8Length(prefix.user) : DEFAULT_USER_LEN;
  const hostLen = prefix.host !== undefined ? utf8Length(prefix.host) : DEFAULT_HOST_LEN;
  // ':' nick '!' user '@' host ' ' command ' ' target ' :'
  const overhead = 1 + utf8Length(prefix.nick) + 1 + userLen + 1 + hostLen + 1 + command.length + 1 + utf8Length(target) + 2;
  const budget = IRC_LINE_BYTES - CRLF_BYTES - overhead - (ctcpAction ? CTCP_ACTION_BYTES : 0);
  return Math.max(0, budget);
}
