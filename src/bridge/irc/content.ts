import type { Json } from '../matrix/matrixSide.js';
import { ircToMatrix } from './formatting.js';
import type { IrcMessageKind } from './ircConnection.js';

const MSGTYPE: Record<IrcMessageKind, string> = { message: 'm.text', action: 'm.emote', notice: 'm.notice' };

/**
 * Matrix content for one IRC line; Matrix users whose nick is named in it are mentioned (m.mentions), so
 * their clients highlight it as they would a Matrix mention.
 */
export function ircLineToContent(kind: IrcMessageKind, text: string, mentionable: Array<{ nick: string; userId: string }> = []): Json {
  const formatted = ircToMatrix(text);
  const content: Json = { msgtype: MSGTYPE[kind], body: formatted.body };
  if (formatted.formatted_body !== undefined) {
    content.format = 'org.matrix.custom.html';
    content.formatted_body = formatted.formatted_body;
  }
  const mentioned = mentionable.filter(({ nick }) => new RegExp(`(^|[^\\w\\[\\]\\\\\`^{}|-])${nick.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^\\w\\[\\]\\\\\`^{}|-])`, 'i').test(formatted.body));
  content['m.mentions'] = mentioned.length ? { user_ids: [...new Set(mentioned.map((m) => m.userId))] } : {};
  return content;
}

/** The Matrix leave reason for an IRC QUIT; networks such as InspIRCd already put "Quit: " before the user's words. */
export function quitReason(reason: string): string {
  const said = reason.trim();
  if (!said) return 'Quit';
  return /^quit:/i.test(said) ? said : `Quit: ${said}`;
}
