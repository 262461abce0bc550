import type { PresenceService } from '../edus/presence.js';
import { toLegacyClientEvent, type ClientEvent } from '../rooms/clientEvent.js';
import type { RoomService } from '../rooms/roomService.js';
import type { Viewer } from '../rooms/roomReader.js';
import type { Database } from '../storage/database.js';
import { allAccountData } from '../storage/repositories/accountData.js';
import { presenceOfUsers } from '../storage/repositories/presence.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import { usersSharingRooms } from '../storage/repositories/state.js';
import { userMemberships } from '../storage/repositories/sync.js';
import { roomSnapshot, type RoomSnapshot } from './roomSnapshot.js';
import type { SyncService } from './syncService.js';
import { mapLimit } from '../util/mapLimit.js';

// Spec: Client-Server API, deprecated "GET /initialSync". Shaped as Synapse answers it: every joined room
// (and, with archived=true, every room left) as the room initialSync shows it, invitations with their
// invite event, the presence of everyone the user shares a room with (and their own), global account data
// and the receipts of the rooms. `end` is a /sync token, so /events and /sync continue from it.

export interface GlobalInitialSync {
  end: string;
  rooms: Array<Omit<RoomSnapshot, 'presence' | 'receipts'> | InvitedRoomInfo>;
  presence: Array<{ type: 'm.presence'; sender: string; content: Record<string, unknown> }>;
  account_data: Array<{ type: string; content: Record<string, unknown> }>;
  receipts: RoomSnapshot['receipts'];
}

interface InvitedRoomInfo {
  room_id: string;
  membership: 'invite';
  visibility: 'public' | 'private';
  invite?: ClientEvent;
  inviter?: string;
  state: ClientEvent[];
  messages: { chunk: ClientEvent[]; start: string; end: string };
}

interface Deps {
  db: Database;
  rooms: RoomService;
  presence: PresenceService;
  sync: SyncService;
}

/** Rooms read at once (each is a handful of queries). */
const ROOM_CONCURRENCY = 4;

export async function globalInitialSync(deps: Deps, viewer: Viewer, opts: { limit: number; archived: boolean }): Promise<GlobalInitialSync> {
  const db = deps.db.knex;
  const reader = deps.rooms.reader;
  // The token is read first: anything that happens while the snapshot is built comes again after it.
  const end = await deps.sync.currentToken();
  const memberships = (await userMemberships(db, viewer.userId)).filter(
    (m) => m.membership === 'join' || m.membership === 'invite' || (opts.archived && m.membership === 'leave'),
  );
  const snapshotDeps = { db: deps.db, reader, presence: deps.presence };
  const entries = await mapLimit(memberships, ROOM_CONCURRENCY, async (m) => {
    if (m.membership === 'invite') return invitedRoom(deps, viewer, m.roomId, m.eventId, end);
    // A forgotten or unreadable room is left out rather than failing the whole response.
    return roomSnapshot(snapshotDeps, viewer, m.roomId, opts.limit, { presence: false }).catch(() => undefined);
  });
  const rooms: GlobalInitialSync['rooms'] = [];
  const receipts: GlobalInitialSync['receipts'] = [];
  for (const entry of entries) {
    if (!entry) continue;
    if ('receipts' in entry) {
      const { presence: _presence, receipts: roomReceipts, ...room } = entry;
      rooms.push(room);
      receipts.push(...roomReceipts);
    } else rooms.push(entry);
  }
  const accountData = (await allAccountData(db, viewer.userId, Number.MAX_SAFE_INTEGER)).filter((r) => r.roomId === '').map((r) => ({ type: r.type, content: r.content }));
  return { end, rooms, presence: await presenceOf(deps, viewer.userId), account_data: accountData, receipts };
}

async function invitedRoom(deps: Deps, viewer: Viewer, roomId: string, eventId: string, end: string): Promise<InvitedRoomInfo> {
  const room = await roomsRepo.getRoom(deps.db.knex, roomId);
  const ev = await deps.rooms.events.get(deps.db.knex, eventId);
  const formatted = ev ? (await deps.rooms.reader.format([ev], viewer))[0] : undefined;
  const invite = formatted ? toLegacyClientEvent(formatted) : undefined;
  return {
    room_id: roomId,
    membership: 'invite',
    visibility: room?.isPublic ? 'public' : 'private',
    ...(invite ? { invite, inviter: invite.sender } : {}),
    // An invitation shows no history: empty state and messages keep the entry's shape.
    state: [],
    messages: { chunk: [], start: end, end },
  };
}

/** The user's own presence and that of everyone sharing a room with them. */
async function presenceOf(deps: Deps, userId: string): Promise<GlobalInitialSync['presence']> {
  if (!deps.presence.enabled) return [];
  const users = [...new Set([userId, ...(await usersSharingRooms(deps.db.knex, userId))])];
  const rows = new Map((await presenceOfUsers(deps.db.knex, users)).map((r) => [r.userId, r]));
  return users.map((u) => ({ type: 'm.presence' as const, sender: u, content: { ...deps.presence.content(rows.get(u)), user_id: u } }));
}

