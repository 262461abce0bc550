import type { PresenceService } from '../edus/presence.js';
import { forbidden } from '../errors.js';
import type { RoomReader, Viewer } from '../rooms/roomReader.js';
import { toLegacyClientEvent, type ClientEvent } from '../rooms/clientEvent.js';
import { encodePaginationToken } from '../rooms/paginationToken.js';
import type { Database } from '../storage/database.js';
import { roomAccountData } from '../storage/repositories/accountData.js';
import { presenceOfUsers } from '../storage/repositories/presence.js';
import { receiptsInRooms } from '../storage/repositories/receipts.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import * as stateRepo from '../storage/repositories/state.js';
import { stateMapKey } from '../types/pdu.js';
import { dict } from '../util/dict.js';

// Spec: Client-Server API, "GET /rooms/{roomId}/initialSync" (deprecated but specified; room previews).
// Shaped as Synapse answers it: presence and receipts beside the spec's fields, none of them for a departed user.

export interface RoomSnapshot {
  room_id: string;
  membership?: string;
  messages: { chunk: ClientEvent[]; start: string; end: string };
  state: ClientEvent[];
  visibility: 'public' | 'private';
  account_data: Array<{ type: string; content: Record<string, unknown> }>;
  presence: Array<{ type: 'm.presence'; sender: string; content: Record<string, unknown> }>;
  receipts: Array<{ type: 'm.receipt'; room_id: string; content: Record<string, unknown> }>;
}

interface Deps {
  db: Database;
  reader: RoomReader;
  presence: PresenceService;
}

const MEMBERSHIPS = new Set(['invite', 'join', 'leave', 'ban']);
const EVERYTHING = Number.MAX_SAFE_INTEGER;

/** `presence: false` leaves the members' presence out (the global initialSync lists it once, at the top). */
export async function roomSnapshot(deps: Deps, viewer: Viewer, roomId: string, limit: number, opts: { presence?: boolean } = {}): Promise<RoomSnapshot> {
  const { reader } = deps;
  const db = deps.db.knex;
  // Throws 403 unless joined, departed, invited/knocking, or the room is world-readable.
  const access = await reader.readableUpTo(viewer.userId, roomId);
  const current = await reader.currentState(roomId);
  const worldReadable = current.get(stateMapKey('m.room.history_visibility', ''))?.content.history_visibility === 'world_readable';
  const departed = access.untilStream !== undefined;
  // An invitation shows the room's invite state through /sync, not its history.
  if (!departed && access.membership !== 'join' && !worldReadable) throw forbidden('You are not allowed to view this room');
  const state = departed ? await reader.visibleState(viewer.userId, roomId) : current;

  const page = await reader.messages(viewer, roomId, { dir: 'b', limit });
  const room = await roomsRepo.getRoom(db, roomId);
  const snapshot: RoomSnapshot = {
    room_id: roomId,
    // Backwards: the page starts at the newest event and ends at the oldest; the snapshot reads forwards.
    // With the whole history in the chunk, `start` is the room's beginning (SyTest and Synapse always give one).
    messages: { chunk: page.chunk.reverse().map(toLegacyClientEvent), start: page.end ?? encodePaginationToken({ depth: 0, stream: 0 }), end: page.start },
    state: (await reader.formatState(viewer, state)).map(toLegacyClientEvent),
    visibility: room?.isPublic ? 'public' : 'private',
    account_data: (await roomAccountData(db, viewer.userId, [roomId], EVERYTHING)).map((r) => ({ type: r.type, content: r.content })),
    presence: departed || opts.presence === false ? [] : await presenceOfMembers(deps, roomId),
    receipts: departed ? [] : await receiptEvents(deps, viewer.userId, roomId),
  };
  if (access.membership !== undefined && MEMBERSHIPS.has(access.membership)) snapshot.membership = access.membership;
  return snapshot;
}

async function presenceOfMembers(deps: Deps, roomId: string): Promise<RoomSnapshot['presence']> {
  if (!deps.presence.enabled) return [];
  const members = await stateRepo.roomMembers(deps.db.knex, roomId, ['join']);
  const rows = new Map((await presenceOfUsers(deps.db.knex, members)).map((r) => [r.userId, r]));
  return members.map((userId) => ({
    type: 'm.presence' as const,
    sender: userId,
    content: { ...deps.presence.content(rows.get(userId)), user_id: userId },
  }));
}

async function receiptEvents(deps: Deps, userId: string, roomId: string): Promise<RoomSnapshot['receipts']> {
  const content = dict<Record<string, Record<string, { ts: number; thread_id?: string }>>>();
  for (const r of await receiptsInRooms(deps.db.knex, [roomId], EVERYTHING)) {
    // A private receipt is seen by its owner only.
    if (r.receiptType === 'm.read.private' && r.userId !== userId) continue;
    const byType = (content[r.eventId] ??= dict());
    const byUser = (byType[r.receiptType] ??= dict());
    byUser[r.userId] = { ts: r.ts, ...(r.threadId !== undefined ? { thread_id: r.threadId } : {}) };
  }
  return Object.keys(content).length ? [{ type: 'm.receipt', room_id: roomId, content }] : [];
}
