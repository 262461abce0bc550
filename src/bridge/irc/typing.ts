import type { Json } from '../matrix/matrixSide.js';
import type { BridgeContext } from './context.js';
import type { Portals } from './portals.js';
import type { Puppets } from './puppets.js';

/**
 * Matrix typing notifications (m.typing, pushed to the bridge as ephemeral events) as IRCv3 `+typing`
 * client tags from each typing user's own connection, on networks that granted message-tags; elsewhere
 * nothing is sent (a line per keystroke pause would be noise).
 */
export class MatrixTyping {
  /** Who was typing in each portal at the last m.typing. */
  private readonly typing = new Map<string, Set<string>>();

  constructor(
    private readonly ctx: BridgeContext,
    private readonly portals: Portals,
    private readonly puppets: Puppets,
  ) {}

  async onEphemeral(event: Json): Promise<void> {
    if (event.type !== 'm.typing' || typeof event.room_id !== 'string') return;
    const ids = (event.content as Json | undefined)?.user_ids;
    if (!Array.isArray(ids)) return;
    const portal = await this.portals.byRoom(event.room_id);
    if (!portal) return;
    const now = new Set(ids.filter((u): u is string => typeof u === 'string' && !this.ctx.isBridgeUser(u)));
    const before = this.typing.get(event.room_id) ?? new Set<string>();
    this.typing.set(event.room_id, now);
    const changes = [...[...now].filter((u) => !before.has(u)).map((u) => [u, 'active'] as const), ...[...before].filter((u) => !now.has(u)).map((u) => [u, 'done'] as const)];
    for (const [userId, state] of changes) {
      const conn = this.puppets.get(portal.network, userId);
      if (conn?.inChannel(portal.channel)) await conn.tagmsg(portal.channel, { '+typing': state }).catch(() => undefined);
    }
  }
}
