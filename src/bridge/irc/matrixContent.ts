import type { Json } from '../matrix/matrixSide.js';
import { matrixToIrc } from './formatting.js';
import { splitIrcLines, privmsgBudget } from './splitting.js';

export type IrcCommand = 'PRIVMSG' | 'NOTICE' | 'ACTION';

export interface RenderOptions {
  /** The link for an mxc:// URI and a file name (undefined: not one). */
  mediaLink: (mxc: string, name: string) => string | undefined;
  /** Longest nick the sender may have (the exact one is known only once connected). */
  maxNickLength: number;
  maxLines: number;
  /** Where the full message can be read when it is cut short. */
  permalink: string;
  /** Files larger than this (per their info.size) get no link: the media proxy would refuse them. */
  maxMediaBytes?: number;
  /** `<nick> "text"` of the message replied to, when there is one. */
  replyTo?: { nick: string; text: string };
}

const MEDIA = new Set(['m.image', 'm.file', 'm.video', 'm.audio']);

function mediaLink(content: Json, link: RenderOptions['mediaLink']): string | undefined {
  const url = content.url;
  if (typeof url !== 'string') return undefined;
  const name = typeof content.filename === 'string' ? content.filename : typeof content.body === 'string' ? content.body : 'file';
  return link(url, name);
}

/** The homeserver's legacy unauthenticated download URL (for homeservers without authenticated media). */
export function legacyMediaLink(base: string, mxc: string, name: string): string | undefined {
  const m = /^mxc:\/\/([^/]+)\/([^/?#]+)$/.exec(mxc);
  if (!m) return undefined;
  return `${base.replace(/\/+$/, '')}/_matrix/media/v3/download/${m[1]}/${m[2]}/${encodeURIComponent(name)}`;
}

const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

function snippet(text: string, max = 40): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/** A reaction as one ACTION line: `reacted 👍 to <bob> "the message…"`. */
export function reactionLine(key: string, quote: { nick: string; text: string } | undefined): string {
  const emoji = snippet(key, 16);
  return quote ? `reacted ${emoji} to <${quote.nick}> "${snippet(quote.text)}"` : `reacted ${emoji} to a message`;
}

/** A redaction of a line the bridge sent lately, as one ACTION line. */
export function redactionLine(text: string, whose: string | undefined): string {
  return whose ? `removed a message by ${whose}: "${snippet(text)}"` : `deleted their message: "${snippet(text)}"`;
}

/** The IRC lines for one Matrix message (text, emote, notice, media, edit, reply), split and capped. */
export function renderForIrc(type: string, content: Json, target: string, opts: RenderOptions): { command: IrcCommand; lines: string[] } {
  const relates = (content['m.relates_to'] ?? {}) as Json;
  const isEdit = relates.rel_type === 'm.replace' && typeof content['m.new_content'] === 'object' && content['m.new_content'] !== null;
  const body = isEdit ? (content['m.new_content'] as Json) : content;
  const msgtype = type === 'm.sticker' ? 'm.image' : String(body.msgtype ?? 'm.text');
  const command: IrcCommand = msgtype === 'm.emote' ? 'ACTION' : msgtype === 'm.notice' ? 'NOTICE' : 'PRIVMSG';
  let lines: string[];
  if (MEDIA.has(msgtype)) {
    const name = typeof body.body === 'string' ? body.body : 'a file';
    const size = typeof (body.info as Json | undefined)?.size === 'number' ? ((body.info as Json).size as number) : undefined;
    const link = mediaLink(body, opts.mediaLink);
    // Encrypted media cannot be opened from IRC: only the key holders can read it.
    if (!link) lines = [`sent an encrypted file (${name}); open Matrix to see it`];
    else if (size !== undefined && opts.maxMediaBytes !== undefined && size > opts.maxMediaBytes) lines = [`sent ${name} (${megabytes(size)}), too large to share with IRC; open Matrix to see it`];
    else lines = [`${name} ${link}`];
  } else {
    lines = matrixToIrc(body as Parameters<typeof matrixToIrc>[0], { isReply: Boolean(relates['m.in_reply_to']) && !isEdit });
  }
  if (!lines.length) return { command, lines: [] };
  if (isEdit) lines[0] = `* ${lines[0]}`;
  if (opts.replyTo) lines[0] = `<${opts.replyTo.nick}> "${snippet(opts.replyTo.text)}" <- ${lines[0]}`;
  const budget = privmsgBudget({ nick: 'x'.repeat(opts.maxNickLength) }, target, command === 'NOTICE' ? 'NOTICE' : 'PRIVMSG', command === 'ACTION');
  let split = splitIrcLines(lines, Math.max(budget, 64));
  if (split.length > opts.maxLines) {
    const rest = split.length - (opts.maxLines - 1);
    split = [...split.slice(0, opts.maxLines - 1), `(${rest} more line${rest === 1 ? '' : 's'}: ${opts.permalink})`];
  }
  return { command, lines: split };
}
