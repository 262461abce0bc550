/**
 * Presence for new room companions over federation (as Synapse): a join makes users share a room whose
 * servers never heard each other's presence, and presence is otherwise only sent when it changes.
 */
import type { Logger } from 'pino';
import type { PresenceService } from '../../edus/presence.js';
import type { WriteResult } from '../../rooms/roomWriter.js';
import type { Database } from '../../storage/database.js';
import { presenceOfUsers } from '../../storage/repositories/presence.js';
import { roomMembers } from '../../storage/repositories/state.js';
import { serverNameOf } from '../serverName.js';
import type { EduOutbox } from './outbox.js';

interface Deps {
  db: Database;
  serverName: string;
  presence: PresenceService;
  outbox: EduOutbox;
  logger: Logger;
}

export function presenceOnJoin(deps: Deps): (result: WriteResult) => void {
  const isLocal = (userId: string) => serverNameOf(userId) === deps.serverName;
  return (result) => {
    if (!deps.presence.enabled) return;
    for (const e of result.events) {
      const pdu = e.pdu;
      if (pdu.type !== 'm.room.member' || typeof pdu.state_key !== 'string' || e.outlier || e.rejected) continue;
      if (pdu.content.membership !== 'join') continue;
      const roomId = pdu.room_id;
      const joiner = pdu.state_key;
      void sendFor(roomId, joiner).catch((err) => deps.logger.warn({ err, roomId }, 'presence on join failed'));
    }
  };

  async function sendFor(roomId: string, joiner: string): Promise<void> {
    const members = await roomMembers(deps.db.knex, roomId, ['join']);
    if (isLocal(joiner)) {
      // Updates that arrived before our join committed were held back: they may apply now.
      await deps.presence.applyHeldRemote(members.filter((m) => !isLocal(m)));
      await queue([joiner], serversOf(members.filter((m) => !isLocal(m))));
    } else {
      await queue(members.filter(isLocal), serversOf([joiner]));
    }
  }

  function serversOf(userIds: readonly string[]): Set<string> {
    const out = new Set<string>();
    for (const u of userIds) {
      const s = serverNameOf(u);
      if (s) out.add(s);
    }
    return out;
  }

  async function queue(localUsers: string[], destinations: Set<string>): Promise<void> {
    destinations.delete(deps.serverName);
    if (!localUsers.length || !destinations.size) return;
    const now = deps.presence.now();
    const push: Array<Record<string, unknown>> = [];
    for (const row of await presenceOfUsers(deps.db.knex, localUsers)) {
      const c = deps.presence.content(row, now);
      // Offline is what a server assumes of users it has heard nothing about.
      if (c.presence === 'offline') continue;
      push.push({ user_id: row.userId, presence: c.presence, last_active_ago: c.last_active_ago ?? 0, currently_active: c.currently_active ?? false, ...(c.status_msg !== undefined ? { status_msg: c.status_msg } : {}) });
    }
    if (!push.length) return;
    await deps.outbox.send(async () => [...destinations].map((destination) => ({ destination, edu: { edu_type: 'm.presence', content: { push } } })));
  }
}
