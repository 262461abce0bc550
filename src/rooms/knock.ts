// Spec: Client-Server API, "Knocking on rooms" — a knock is a membership event the auth rules judge
// (join rule `knock` / `knock_restricted` in room versions with knocking). Moderators answer it with an
// invite (accept) or a kick (reject) through the ordinary membership endpoints.
import { canonicalJson } from '../crypto/canonicalJson.js';
import { forbidden, notFound } from '../errors.js';
import type { Database } from '../storage/database.js';
import { getProfile } from '../storage/repositories/profiles.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import { stateMapKey } from '../types/pdu.js';
import { serverNameOf } from './eventFormat.js';
import type { Actor, RoomService } from './roomService.js';

export interface KnockDeps {
  db: Database;
  serverName: string;
  rooms: RoomService;
}

/** POST /knock/{roomIdOrAlias}: returns the room id knocked on. */
export async function knock(deps: KnockDeps, actor: Actor, roomIdOrAlias: string, reason?: string, via: readonly string[] = []): Promise<string> {
  const asked: Record<string, unknown> = reason !== undefined ? { membership: 'knock', reason } : { membership: 'knock' };
  await deps.rooms.assertValidDraft(roomIdOrAlias, { type: 'm.room.member', stateKey: actor.userId, content: asked, sender: actor.userId });
  const remote = deps.rooms.remoteKnocker;
  if (remote && roomIdOrAlias.startsWith('#') && serverNameOf(roomIdOrAlias) !== deps.serverName) return remote(actor, roomIdOrAlias, reason, via);
  const roomId = await deps.rooms.resolveRoomIdOrAlias(roomIdOrAlias);
  const db = deps.db.knex;
  if (!(await roomsRepo.getRoom(db, roomId))) {
    // A room on other servers: make_knock / send_knock through federation.
    if (remote && serverNameOf(roomId) !== deps.serverName) return remote(actor, roomId, reason, via);
    // Rooms on other servers need federation (make_knock/send_knock); until then they are unknown here.
    throw notFound(serverNameOf(roomId) === deps.serverName ? 'Unknown room' : 'Knocking on rooms on other servers is not supported yet');
  }
  const profile = await getProfile(db, actor.userId);
  const content: Record<string, unknown> = { membership: 'knock' };
  if (profile?.displayname) content.displayname = profile.displayname;
  if (profile?.avatar_url) content.avatar_url = profile.avatar_url;
  if (reason !== undefined) content.reason = reason;
  await deps.rooms.assertValidDraft(roomId, { type: 'm.room.member', stateKey: actor.userId, content, sender: actor.userId });
  await deps.rooms.write(roomId, async (ctx) => {
    const current = ctx.state.get(stateMapKey('m.room.member', actor.userId));
    // Knocking again with the same content changes nothing.
    if (current?.content.membership === 'knock' && canonicalJson(current.content) === canonicalJson(content)) return;
    // Clearer answers than the auth rules' wording for the common refusals; the auth rules still decide.
    if (!ctx.version.knockJoinRule) throw forbidden(`Room version ${ctx.version.id} does not support knocking`);
    const membership = ctx.membershipOf(actor.userId);
    if (membership === 'join') throw forbidden('You are already in the room');
    if (membership === 'invite') throw forbidden('You are already invited to the room');
    if (membership === 'ban') throw forbidden('You are banned from the room');
    await ctx.append({ type: 'm.room.member', stateKey: actor.userId, content, sender: actor.userId });
  });
  await roomsRepo.unforgetRoom(db, actor.userId, roomId);
  return roomId;
}
