import type { Client, Message } from 'matrix-org-irc';
import { parseMessage } from 'matrix-org-irc/lib/parse_message.js';

/** IRCv3 capabilities the bridge asks for when the network offers them (CAP negotiation). */
export const WANTED_CAPS = ['message-tags'];

/** A line's IRCv3 message tags (`@a=b;+c=d`), when the network sends them. */
export type Tags = Map<string, string>;
export type TaggedMessage = Message & { tags?: Tags };

/** Longest line the bridge buffers: 8191 bytes of tags and 512 of message (IRCv3), with room to spare. */
const MAX_LINE_BYTES = 16_384;

const UNESCAPE: Record<string, string> = { ':': ';', s: ' ', '\\': '\\', r: '\r', n: '\n' };

export function parseTags(raw: string): Tags {
  const tags: Tags = new Map();
  for (const part of raw.split(';')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1).replace(/\\(.?)/g, (_, c: string) => UNESCAPE[c] ?? c);
    tags.set(key, value);
  }
  return tags;
}

export function formatTags(tags: Record<string, string>): string {
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/;/g, '\\:').replace(/ /g, '\\s').replace(/\r/g, '\\r').replace(/\n/g, '\\n');
  return `@${Object.entries(tags).map(([k, v]) => (v ? `${k}=${esc(v)}` : k)).join(';')}`;
}

/** One line's text: UTF-8 when it is valid, else Latin-1 (what older IRC clients send), never U+FFFD soup. */
function decodeLine(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return text.includes('\uFFFD') && !Buffer.from(text, 'utf8').equals(bytes) ? bytes.toString('latin1') : text;
}

/**
 * Teaches a matrix-org-irc client what it lacks: it asks for the IRCv3 caps in `WANTED_CAPS` that the
 * server offers (besides SASL), reads message tags off each line (the library's parser does not know
 * them), decodes each line on its own (UTF-8, else Latin-1), and drops lines too long for any IRC server.
 */
export function installIrcv3(client: Client, sasl: boolean): void {
  const c = client as unknown as {
    buffer: Buffer;
    opt: { stripColors: boolean };
    state: { capabilities: { serverCapabilites: { caps: Set<string> } } };
    onData(chunk: Buffer | string): void;
    onCapsList(): void;
    send(...args: string[]): Promise<void>;
    _send(...args: string[]): Promise<void>;
    emit(event: 'raw', m: TaggedMessage): boolean;
  };
  c.onCapsList = () => {
    const offered = c.state.capabilities.serverCapabilites.caps;
    const wanted = [...(sasl ? ['sasl'] : []), ...WANTED_CAPS.filter((cap) => offered.has(cap))];
    if (!wanted.length) void c._send('CAP', 'END');
    else void c.send('CAP REQ :', ...wanted);
  };
  // The library waits for ever on a refused request: registration goes on without the caps.
  client.on('raw', (m) => {
    if (m.command === 'CAP' && m.args[1] === 'NAK' && !sasl) void c._send('CAP', 'END');
  });
  c.onData = (chunk) => {
    c.buffer = Buffer.concat([c.buffer, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
    let start = 0;
    for (let nl = c.buffer.indexOf(10); nl >= 0; nl = c.buffer.indexOf(10, start)) {
      const line = c.buffer.subarray(start, nl);
      start = nl + 1;
      if (line.length > MAX_LINE_BYTES) continue;
      handleLine(decodeLine(line.at(-1) === 13 ? line.subarray(0, -1) : line));
    }
    c.buffer = c.buffer.subarray(start);
    // A "line" with no end in sight is not IRC: it is dropped rather than kept in memory.
    if (c.buffer.length > MAX_LINE_BYTES) c.buffer = Buffer.alloc(0);
  };
  const handleLine = (line: string) => {
    if (!line) return;
    let tags: Tags | undefined;
    if (line.startsWith('@')) {
      const space = line.indexOf(' ');
      if (space < 0) return;
      tags = parseTags(line.slice(1, space));
      line = line.slice(space + 1).trimStart();
    }
    let message: TaggedMessage;
    try {
      message = parseMessage(line, c.opt.stripColors);
    } catch {
      return; // Not a line the library can read: IRC servers do not send those, and nothing can be done with it.
    }
    if (tags) message.tags = tags;
    try {
      c.emit('raw', message);
    } catch {
      // The library throws on lines it cannot make sense of; from the socket's data handler that would end
      // the whole bridge, for one odd line from a server.
    }
  };
}
