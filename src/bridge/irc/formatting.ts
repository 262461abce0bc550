// Conversion between IRC control-code formatting and Matrix message content (plain body + org.matrix.custom.html).
import { Parser } from 'htmlparser2';

export interface MatrixFormattedText {
  body: string;
  format?: 'org.matrix.custom.html';
  formatted_body?: string;
}

export interface MatrixMessageLike {
  msgtype?: string;
  body?: unknown;
  format?: unknown;
  formatted_body?: unknown;
  'm.relates_to'?: unknown;
}

export interface MatrixToIrcOptions {
  /** Strip the plain-text reply fallback from `body`; defaults to detecting `m.relates_to.m.in_reply_to`. */
  isReply?: boolean;
}

const BOLD = '\x02';
const COLOUR = '\x03';
const HEX_COLOUR = '\x04';
const RESET = '\x0F';
const MONOSPACE = '\x11';
const REVERSE = '\x16';
const STRIKE = '\x1E';
const ITALIC = '\x1D';
const UNDERLINE = '\x1F';

type Toggle = 'bold' | 'italic' | 'underline' | 'strike' | 'mono';

// Fixed order keeps the generated HTML (outer→inner) and IRC toggles deterministic.
const TOGGLES: readonly Toggle[] = ['bold', 'italic', 'underline', 'strike', 'mono'];

const TOGGLE_CODE: Readonly<Record<Toggle, string>> = {
  bold: BOLD,
  italic: ITALIC,
  underline: UNDERLINE,
  strike: STRIKE,
  mono: MONOSPACE,
};

const TOGGLE_TAG: Readonly<Record<Toggle, string>> = {
  bold: 'strong',
  italic: 'em',
  underline: 'u',
  strike: 'del',
  mono: 'code',
};

const CODE_TOGGLE: Readonly<Record<string, Toggle>> = {
  [BOLD]: 'bold',
  [ITALIC]: 'italic',
  [UNDERLINE]: 'underline',
  [STRIKE]: 'strike',
  [MONOSPACE]: 'mono',
};

// mIRC colours 0–15 followed by the extended palette 16–98 (https://modern.ircdocs.horse/formatting); 99 means "default".
const IRC_PALETTE: readonly string[] = [
  'ffffff', '000000', '00007f', '009300', 'ff0000', '7f0000', '9c009c', 'fc7f00',
  'ffff00', '00fc00', '009393', '00ffff', '0000fc', 'ff00ff', '7f7f7f', 'd2d2d2',
  '470000', '472100', '474700', '324700', '004700', '00472c', '004747', '002747', '000047', '2e0047', '470047', '47002a',
  '740000', '743a00', '747400', '517400', '007400', '007449', '007474', '004074', '000074', '4b0074', '740074', '740045',
  'b50000', 'b56300', 'b5b500', '7db500', '00b500', '00b571', '00b5b5', '0063b5', '0000b5', '7500b5', 'b500b5', 'b5006b',
  'ff0000', 'ff8c00', 'ffff00', 'b2ff00', '00ff00', '00ffa0', '00ffff', '008cff', '0000ff', 'a500ff', 'ff00ff', 'ff0098',
  'ff5959', 'ffb459', 'ffff71', 'cfff60', '6fff6f', '65ffc9', '6dffff', '59b4ff', '5959ff', 'c459ff', 'ff66ff', 'ff59bc',
  'ff9c9c', 'ffd39c', 'ffff9c', 'e2ff9c', '9cff9c', '9cffdb', '9cffff', '9cd3ff', '9c9cff', 'dc9cff', 'ff9cff', 'ff94d3',
  '000000', '131313', '282828', '363636', '4d4d4d', '656565', '818181', '9f9f9f', 'bcbcbc', 'e2e2e2', 'ffffff',
];

interface IrcStyle {
  toggles: ReadonlySet<Toggle>;
  fg?: string;
  bg?: string;
}

interface IrcRun {
  text: string;
  style: IrcStyle;
}

/** Mutable style while scanning one IRC message. */
interface ScanState {
  toggles: Set<Toggle>;
  fg?: string;
  bg?: string;
}

interface ColourCode {
  /** Index just past the code. */
  end: number;
  /** Undefined when the code carries no colour at all (a reset). */
  fg?: string | null;
  bg?: string | null;
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

function isHexDigit(c: string | undefined): boolean {
  return c !== undefined && /^[0-9a-fA-F]$/.test(c);
}

/** Reads up to `max` characters matching `pred` starting at `i`. */
function readWhile(text: string, i: number, max: number, pred: (c: string | undefined) => boolean): string {
  let j = i;
  while (j - i < max && pred(text[j])) j++;
  return text.slice(i, j);
}

// null = "back to the client default" (colour 99 / out of range), so it clears rather than sets.
function paletteColour(digits: string): string | null {
  const hex = IRC_PALETTE[Number(digits)];
  return hex === undefined ? null : `#${hex}`;
}

/** Parses `\x03F[,B]` at `i` (pointing at \x03); a lone \x03 resets both colours and leaves a following comma as text. */
function readMircColour(text: string, i: number): ColourCode {
  const fg = readWhile(text, i + 1, 2, isDigit);
  if (fg === '') return { end: i + 1 };
  const end = i + 1 + fg.length;
  if (text[end] !== ',' || !isDigit(text[end + 1])) return { end, fg: paletteColour(fg) };
  const bg = readWhile(text, end + 1, 2, isDigit);
  return { end: end + 1 + bg.length, fg: paletteColour(fg), bg: paletteColour(bg) };
}

/** Parses `\x04RRGGBB[,RRGGBB]` at `i`; a bare \x04 resets colours like a bare \x03. */
function readHexColour(text: string, i: number): ColourCode {
  const fg = readWhile(text, i + 1, 6, isHexDigit);
  if (fg.length !== 6) return { end: i + 1 };
  let end = i + 7;
  const bgDigits = text[end] === ',' ? readWhile(text, end + 1, 6, isHexDigit) : '';
  if (bgDigits.length !== 6) return { end, fg: `#${fg.toLowerCase()}` };
  end += 7;
  return { end, fg: `#${fg.toLowerCase()}`, bg: `#${bgDigits.toLowerCase()}` };
}

function applyColour(state: ScanState, code: ColourCode): void {
  if (code.fg === undefined) {
    delete state.fg;
    delete state.bg;
    return;
  }
  if (code.fg === null) delete state.fg;
  else state.fg = code.fg;
  if (code.bg === null) delete state.bg;
  else if (code.bg !== undefined) state.bg = code.bg;
}

function snapshot(state: ScanState): IrcStyle {
  const style: IrcStyle = { toggles: new Set(state.toggles) };
  if (state.fg !== undefined) style.fg = state.fg;
  if (state.bg !== undefined) style.bg = state.bg;
  return style;
}

/** Splits an IRC message into runs of text that share one style; all control codes are consumed. */
function scanIrc(text: string): IrcRun[] {
  const runs: IrcRun[] = [];
  const state: ScanState = { toggles: new Set() };
  let buf = '';
  const flush = (): void => {
    if (buf !== '') runs.push({ text: buf, style: snapshot(state) });
    buf = '';
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    const toggle = CODE_TOGGLE[c];
    if (toggle !== undefined) {
      flush();
      if (state.toggles.has(toggle)) state.toggles.delete(toggle);
      else state.toggles.add(toggle);
      i++;
    } else if (c === COLOUR || c === HEX_COLOUR) {
      flush();
      const code = c === COLOUR ? readMircColour(text, i) : readHexColour(text, i);
      applyColour(state, code);
      i = code.end;
    } else if (c === RESET) {
      flush();
      state.toggles.clear();
      delete state.fg;
      delete state.bg;
      i++;
    } else if (c === REVERSE) {
      i++; // Reverse video has no Matrix equivalent; drop it.
    } else {
      buf += c;
      i++;
    }
  }
  flush();
  return runs;
}

export function stripIrcFormatting(text: string): string {
  return scanIrc(text)
    .map((r) => r.text)
    .join('');
}

function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function isPlain(style: IrcStyle): boolean {
  return style.toggles.size === 0 && style.fg === undefined && style.bg === undefined;
}

/** Opening tags a style needs, outermost first; equal strings mean the same element can stay open. */
function openTagsFor(style: IrcStyle): string[] {
  const tags: string[] = [];
  if (style.fg !== undefined || style.bg !== undefined) {
    const fg = style.fg !== undefined ? ` data-mx-color="${style.fg}"` : '';
    const bg = style.bg !== undefined ? ` data-mx-bg-color="${style.bg}"` : '';
    tags.push(`<font${fg}${bg}>`);
  }
  for (const t of TOGGLES) if (style.toggles.has(t)) tags.push(`<${TOGGLE_TAG[t]}>`);
  return tags;
}

function closeTagFor(openTag: string): string {
  const name = /^<([a-z]+)/.exec(openTag)?.[1] ?? 'span';
  return `</${name}>`;
}

/** Renders runs as HTML, keeping a stack of open tags so the output is always well nested. */
function runsToHtml(runs: readonly IrcRun[]): string {
  const open: string[] = [];
  let html = '';
  for (const run of runs) {
    const want = openTagsFor(run.style);
    let common = 0;
    while (common < open.length && common < want.length && open[common] === want[common]) common++;
    while (open.length > common) html += closeTagFor(open.pop() as string);
    for (const tag of want.slice(common)) {
      open.push(tag);
      html += tag;
    }
    html += escapeHtml(run.text).replace(/\r?\n/g, '<br />');
  }
  while (open.length > 0) html += closeTagFor(open.pop() as string);
  return html;
}

export function ircToMatrix(text: string): MatrixFormattedText {
  const runs = scanIrc(text);
  const body = runs.map((r) => r.text).join('');
  if (runs.every((r) => isPlain(r.style))) return { body };
  return { body, format: 'org.matrix.custom.html', formatted_body: runsToHtml(runs) };
}

// ---------------------------------------------------------------------------------------------
// Matrix → IRC

/** Elements whose whole content is dropped (reply fallbacks, non-visible content). */
const SKIPPED_ELEMENTS: ReadonlySet<string> = new Set(['mx-reply', 'script', 'style', 'head', 'title']);

/** Elements that start and end on their own line. */
const BLOCK_ELEMENTS: ReadonlySet<string> = new Set([
  'p', 'div', 'section', 'article', 'header', 'footer', 'nav', 'aside', 'main', 'figure', 'figcaption',
  'table', 'thead', 'tbody', 'tfoot', 'tr', 'caption', 'dl', 'dt', 'dd', 'details', 'summary', 'hr', 'address',
]);

const INLINE_TOGGLES: Readonly<Record<string, Toggle>> = {
  b: 'bold',
  strong: 'bold',
  i: 'italic',
  em: 'italic',
  cite: 'italic',
  u: 'underline',
  ins: 'underline',
  del: 'strike',
  s: 'strike',
  strike: 'strike',
  code: 'mono',
  tt: 'mono',
  kbd: 'mono',
  samp: 'mono',
};

const HEADING = /^h[1-6]$/;

interface ListFrame {
  ordered: boolean;
  counter: number;
}

interface LinkFrame {
  href: string | undefined;
  text: string;
}

/** Path segments of a matrix.to permalink, percent-decoded; undefined for other urls. */
function matrixToSegments(href: string): string[] | undefined {
  const m = /^https:\/\/matrix\.to\/#\/([^?]*)/.exec(href);
  if (m === null) return undefined;
  return (m[1] as string).split('/').filter((seg) => seg !== '').map(safeDecode);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// matrix.to permalinks to a user/room/alias (no event part) are mention pills; their text is enough.
function mentionTarget(href: string): string | undefined {
  const segments = matrixToSegments(href);
  const id = segments?.[0];
  return segments?.length === 1 && id !== undefined && /^[@#!]/.test(id) ? id : undefined;
}

// Auto-linkified text ("example.com" → http://example.com/) should not repeat the url.
function comparableUrl(s: string): string {
  return s
    .trim()
    .replace(/^mailto:/i, '')
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .replace(/\/$/, '')
    .toLowerCase();
}

/** Walks htmlparser2 events and writes IRC lines; one instance per message. */
class HtmlToIrc {
  readonly lines: string[] = [];
  private cur = '';
  private curHasText = false;
  private lastWasSpace = false;
  private readonly depth: Record<Toggle, number> = { bold: 0, italic: 0, underline: 0, strike: 0, mono: 0 };
  private readonly emitted = new Set<Toggle>();
  private skipDepth = 0;
  private preDepth = 0;
  private preJustOpened = false;
  private quoteDepth = 0;
  private readonly lists: ListFrame[] = [];
  private bullet: string | undefined;
  private readonly links: LinkFrame[] = [];

  onOpen(name: string, attrs: Record<string, string>): void {
    if (SKIPPED_ELEMENTS.has(name) || this.skipDepth > 0) {
      if (SKIPPED_ELEMENTS.has(name)) this.skipDepth++;
      return;
    }
    const toggle = Object.hasOwn(INLINE_TOGGLES, name) ? INLINE_TOGGLES[name] : undefined;
    if (toggle !== undefined) this.depth[toggle]++;
    else if (name === 'br') this.hardBreak();
    else if (name === 'pre') this.openPre();
    else if (HEADING.test(name)) this.openHeading();
    else if (name === 'blockquote') this.openQuote();
    else if (name === 'ul' || name === 'ol') this.openList(name === 'ol', attrs['start']);
    else if (name === 'li') this.openItem();
    else if (name === 'a') this.links.push({ href: attrs['href'], text: '' });
    else if (name === 'img') this.image(attrs);
    else if (name === 'td' || name === 'th') this.cellGap();
    else if (BLOCK_ELEMENTS.has(name)) this.softBreak();
  }

  onClose(name: string): void {
    if (this.skipDepth > 0) {
      if (SKIPPED_ELEMENTS.has(name)) this.skipDepth--;
      return;
    }
    const toggle = Object.hasOwn(INLINE_TOGGLES, name) ? INLINE_TOGGLES[name] : undefined;
    // prototype-safe: toggle is one of TOGGLES
    if (toggle !== undefined) this.depth[toggle] = Math.max(0, this.depth[toggle] - 1);
    else if (name === 'pre') this.closePre();
    else if (HEADING.test(name)) this.closeHeading();
    else if (name === 'blockquote') this.closeQuote();
    else if (name === 'ul' || name === 'ol') this.closeList();
    else if (name === 'li') this.closeItem();
    else if (name === 'a') this.closeLink();
    else if (BLOCK_ELEMENTS.has(name)) this.softBreak();
  }

  onText(data: string): void {
    if (this.skipDepth > 0) return;
    if (this.preDepth > 0) this.preText(data);
    else this.flowText(data);
  }

  finish(): string[] {
    this.softBreak();
    return this.lines;
  }

  private preText(data: string): void {
    // Like browsers, ignore the newline that directly follows <pre>.
    const text = this.preJustOpened ? data.replace(/^\r?\n/, '') : data;
    this.preJustOpened = false;
    text.split(/\r\n|\r|\n/).forEach((part, idx) => {
      if (idx > 0) this.hardBreak();
      if (part !== '') this.write(part);
    });
  }

  private flowText(data: string): void {
    this.preJustOpened = false;
    let text = data.replace(/[ \t\n\r\f]+/g, ' ');
    // HTML whitespace collapsing: no leading space on a line, no double spaces.
    if (text.startsWith(' ') && (!this.curHasText || this.lastWasSpace)) text = text.slice(1);
    if (text !== '') this.write(text);
  }

  /** Appends visible text, emitting the line prefix and format toggles it needs first. */
  private write(text: string): void {
    if (!this.curHasText) this.cur += this.linePrefix();
    for (const t of TOGGLES) {
      if (this.depth[t] > 0 !== this.emitted.has(t)) {
        this.cur += TOGGLE_CODE[t];
        if (this.emitted.has(t)) this.emitted.delete(t);
        else this.emitted.add(t);
      }
    }
    this.cur += text;
    this.curHasText = true;
    this.lastWasSpace = text.endsWith(' ');
    for (const link of this.links) link.text += text;
  }

  private linePrefix(): string {
    let prefix = '> '.repeat(this.quoteDepth);
    if (this.bullet !== undefined) {
      prefix += '  '.repeat(Math.max(0, this.lists.length - 1)) + this.bullet;
      this.bullet = undefined;
    }
    return prefix;
  }

  /** Ends the current line even when it is empty (a <br> or a blank line in <pre>). */
  private hardBreak(): void {
    this.cur = this.cur.trimEnd();
    // IRC formatting does not carry over lines, so close toggles here and reopen them lazily.
    for (const t of TOGGLES) if (this.emitted.has(t)) this.cur += TOGGLE_CODE[t];
    this.emitted.clear();
    this.lines.push(this.cur);
    this.cur = '';
    this.curHasText = false;
    this.lastWasSpace = false;
  }

  /** Ends the current line only if something was written to it (block element boundary). */
  private softBreak(): void {
    if (this.curHasText) this.hardBreak();
  }

  private openPre(): void {
    this.softBreak();
    this.preDepth++;
    this.depth.mono++;
    this.preJustOpened = true;
  }

  private closePre(): void {
    this.preDepth = Math.max(0, this.preDepth - 1);
    this.depth.mono = Math.max(0, this.depth.mono - 1);
    this.softBreak();
  }

  private openHeading(): void {
    this.softBreak();
    this.depth.bold++;
  }

  private closeHeading(): void {
    this.depth.bold = Math.max(0, this.depth.bold - 1);
    this.softBreak();
  }

  private openQuote(): void {
    this.softBreak();
    this.quoteDepth++;
  }

  private closeQuote(): void {
    this.softBreak();
    this.quoteDepth = Math.max(0, this.quoteDepth - 1);
  }

  private openList(ordered: boolean, start: string | undefined): void {
    this.softBreak();
    const first = start !== undefined && /^-?\d{1,9}$/.test(start.trim()) ? Number(start.trim()) : 1;
    this.lists.push({ ordered, counter: first - 1 });
  }

  private closeList(): void {
    this.softBreak();
    this.lists.pop();
    this.bullet = undefined;
  }

  private openItem(): void {
    this.softBreak();
    const list = this.lists[this.lists.length - 1];
    if (list === undefined || !list.ordered) {
      this.bullet = '• ';
      return;
    }
    list.counter++;
    this.bullet = `${list.counter}. `;
  }

  private closeItem(): void {
    this.softBreak();
    this.bullet = undefined;
  }

  private closeLink(): void {
    const link = this.links.pop();
    const href = link?.href?.trim();
    if (link === undefined || href === undefined || href === '') return;
    const text = link.text.trim();
    const mention = mentionTarget(href);
    if (mention !== undefined) {
      if (text === '') this.write(mention);
      return;
    }
    if (text === '') this.write(href);
    else if (comparableUrl(text) !== comparableUrl(href)) this.write(` <${href}>`);
  }

  private image(attrs: Record<string, string>): void {
    const alt = (attrs['alt'] ?? attrs['title'] ?? '').trim();
    const src = (attrs['src'] ?? '').trim();
    // Custom emoji: the shortcode reads fine on IRC, the mxc:// url would just be noise.
    if ('data-mx-emoticon' in attrs && alt !== '') return this.write(alt);
    if (alt !== '' && src !== '') this.write(`${alt} <${src}>`);
    else if (alt !== '' || src !== '') this.write(alt || src);
  }

  private cellGap(): void {
    if (this.curHasText && !this.lastWasSpace) this.write(' ');
  }
}

function htmlToIrcLines(html: string): string[] {
  const walker = new HtmlToIrc();
  const parser = new Parser(
    {
      onopentag: (name, attrs) => walker.onOpen(name, attrs),
      onclosetag: (name) => walker.onClose(name),
      ontext: (data) => walker.onText(data),
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  parser.write(html);
  parser.end();
  return walker.finish();
}

function hasInReplyTo(content: MatrixMessageLike): boolean {
  const rel = content['m.relates_to'];
  if (typeof rel !== 'object' || rel === null) return false;
  const reply = (rel as Record<string, unknown>)['m.in_reply_to'];
  return typeof reply === 'object' && reply !== null;
}

/** Drops the legacy "> <@user> quoted\n> …\n\n" prefix that replies carry in `body`. */
function stripReplyFallback(lines: string[]): string[] {
  let i = 0;
  while (i < lines.length && (lines[i] as string).startsWith('>')) i++;
  if (i === 0 || i >= lines.length || lines[i] !== '') return lines;
  return lines.slice(i + 1);
}

/** Removes characters that would break IRC framing or smuggle CTCP, trims and collapses blank lines. */
function tidyLines(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of lines) {
    const line = raw.replace(/[\0\x01\r\n]/g, '').trimEnd();
    if (line === '' && (out.length === 0 || out[out.length - 1] === '')) continue;
    out.push(line);
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
}

function plainBodyLines(body: unknown, isReply: boolean): string[] {
  if (typeof body !== 'string') return [];
  const lines = body.split(/\r\n|\r|\n/);
  return tidyLines(isReply ? stripReplyFallback(lines) : lines);
}

export function matrixToIrc(content: MatrixMessageLike, opts: MatrixToIrcOptions = {}): string[] {
  const isReply = opts.isReply ?? hasInReplyTo(content);
  if (content.format === 'org.matrix.custom.html' && typeof content.formatted_body === 'string') {
    try {
      const lines = tidyLines(htmlToIrcLines(content.formatted_body));
      if (lines.length > 0) return lines;
    } catch {
      // Fall through to the plain body: a broken formatted_body must not lose the message.
    }
  }
  return plainBodyLines(content.body, isReply);
}
