// Restricted joins (spec: Client-Server API "Restricted rooms"; room versions 8+ / 10+ for knock_restricted):
// the joining user's server, or a resident one, names a user who may invite as the join's authoriser after
// checking that the joining user is in one of the rooms the join rule allows.
import { MatrixError, forbidden } from '../errors.js';
import type { Db } from '../storage/database.js';
import { roomMembers } from '../storage/repositories/state.js';
import { stateMapKey, type Pdu } from '../types/pdu.js';
import { powerLevelFor, userPowerLevel } from './authRules.js';
import { serverNameOf } from './eventFormat.js';
import type { RoomVersion } from './roomVersions.js';

type StateMap = ReadonlyMap<string, Pdu>;

/** The room's join rule is `restricted` / `knock_restricted` in a version that has it. */
export function isRestrictedRoom(state: StateMap, version: RoomVersion): boolean {
  const rule = state.get(stateMapKey('m.room.join_rules', ''))?.content.join_rule;
  return (version.restrictedJoinRule && rule === 'restricted') || (version.knockRestrictedJoinRule && rule === 'knock_restricted');
}

/** Room ids of the join rule's well-formed `m.room_membership` conditions (malformed ones are ignored). */
export function allowedRoomIds(state: StateMap): string[] {
  const allow = state.get(stateMapKey('m.room.join_rules', ''))?.content.allow;
  if (!Array.isArray(allow)) return [];
  const out: string[] = [];
  for (const entry of allow) {
    if (entry && typeof entry === 'object' && (entry as Record<string, unknown>).type === 'm.room_membership') {
      const roomId = (entry as Record<string, unknown>).room_id;
      if (typeof roomId === 'string' && roomId.startsWith('!')) out.push(roomId);
    }
  }
  return out;
}

/** Joined users who may invite (the auth rules' condition for an authoriser), highest power first. */
export function usersWhoCanInvite(state: StateMap, version: RoomVersion): string[] {
  const needed = powerLevelFor(state, 'invite', version);
  const out: Array<{ userId: string; level: number }> = [];
  for (const pdu of state.values()) {
    if (pdu.type !== 'm.room.member' || typeof pdu.state_key !== 'string' || pdu.content.membership !== 'join') continue;
    const level = userPowerLevel(state, pdu.state_key, version);
    if (level >= needed) out.push({ userId: pdu.state_key, level });
  }
  return out.sort((a, b) => b.level - a.level || a.userId.localeCompare(b.userId)).map((u) => u.userId);
}

/** Servers (other than ours) with a user who could authorise a restricted join. */
export function authorisingServers(state: StateMap, version: RoomVersion, ownServer: string): string[] {
  const servers = usersWhoCanInvite(state, version).map((u) => serverNameOf(u) ?? '');
  return [...new Set(servers)].filter((s) => s && s !== ownServer);
}

/**
 * The join's `join_authorised_via_users_server`: a local user who may invite, once `userId` is seen joined
 * to an allowed room this server is in (our view of a room we are not in proves nothing). Undefined when no
 * local user may invite (another server must authorise); 403 when the allow conditions are not met, or for
 * make_join (`resident`) 400 M_UNABLE_TO_AUTHORISE_JOIN when this server is in none of the allowed rooms.
 */
export async function localJoinAuthoriser(
  db: Db,
  state: StateMap,
  version: RoomVersion,
  userId: string,
  ownServer: string,
  resident = false,
): Promise<string | undefined> {
  const authoriser = usersWhoCanInvite(state, version).find((u) => serverNameOf(u) === ownServer);
  if (!authoriser) return undefined;
  let inAny = false;
  for (const roomId of allowedRoomIds(state)) {
    const joined = await roomMembers(db, roomId, ['join']);
    if (!joined.some((u) => serverNameOf(u) === ownServer)) continue;
    inAny = true;
    if (joined.includes(userId)) return authoriser;
  }
  if (resident && !inAny) {
    throw new MatrixError('M_UNABLE_TO_AUTHORISE_JOIN', 'This server is in none of the rooms that allow joining; try another server', 400);
  }
  throw forbidden('You are not a member of any room this room allows joining from');
}

/** make_join for a restricted room when no local user may authorise: the joining server must try another. */
export function unableToGrant(): MatrixError {
  return new MatrixError('M_UNABLE_TO_GRANT_JOIN', 'No user of this server may authorise the join; try another server', 400);
}
