import type { ClientEvent } from '../rooms/clientEvent.js';
import { toStrippedState } from '../rooms/clientEvent.js';
import type { RoomService } from '../rooms/roomService.js';
import type { Database } from '../storage/database.js';
import { roomEventsTopological, type StoredEvent } from '../storage/repositories/events.js';
import * as roomsRepo from '../storage/repositories/rooms.js';
import * as stateRepo from '../storage/repositories/state.js';
import { stateMapKey } from '../types/pdu.js';
import { safeSegment, type ExportDirectory } from './exportDirectory.js';

export interface RoomHistoryDeps {
  db: Database;
  rooms: RoomService;
}

export interface RoomExportSummary {
  room_id: string;
  membership: string;
  membership_event_id: string;
  forgotten: boolean;
  events: number;
  directory: string;
}

const MEMBERSHIPS = ['join', 'leave', 'ban', 'invite', 'knock'];
const PAGE = 200;
// As /sync's invite and knock sections (src/sync/providers/rooms.ts).
const STRIPPED_TYPES = ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar', 'm.room.canonical_alias', 'm.room.encryption', 'm.room.topic'];

/**
 * Every room the user has a membership in (joined, left, banned, invited, knocking; forgotten ones too,
 * flagged), with the events the server lets them see there: all of the room's events, read forwards,
 * kept when history visibility lets the user see them (the check /messages makes) or when they sent them,
 * and cut at their leave, ban, invite or knock for a room they are not joined to, as /messages cuts them.
 */
export async function exportRooms(deps: RoomHistoryDeps, userId: string, out: ExportDirectory): Promise<RoomExportSummary[]> {
  const db = deps.db.knex;
  const { reader, events: eventStore, state: stateStore } = deps.rooms;
  const memberships = await stateRepo.roomsForUser(db, userId, MEMBERSHIPS);
  memberships.sort((a, b) => (a.roomId < b.roomId ? -1 : a.roomId > b.roomId ? 1 : 0));
  const forgotten = await roomsRepo.forgottenRooms(db, userId);
  const viewer = { userId };
  const summaries: RoomExportSummary[] = [];
  for (const m of memberships) {
    const member = await eventStore.get(db, m.eventId);
    const dirName = safeSegment(m.roomId);
    const roomDir = ['rooms', dirName];
    const known = (await roomsRepo.getRoom(db, m.roomId)) !== undefined;
    const ceiling = m.membership === 'join' ? Number.MAX_SAFE_INTEGER : (member?.streamOrdering ?? 0);
    const file = out.jsonArray([...roomDir, 'events.json']);
    let written = 0;
    let sawMembership = false;
    if (known) {
      let cursor = { depth: 0, stream: 0 };
      for (;;) {
        const page = await roomEventsTopological(db, m.roomId, cursor, 'f', PAGE);
        if (page.length === 0) break;
        const last = page[page.length - 1]!;
        cursor = { depth: last.depth, stream: last.streamOrdering };
        const inRange = page.filter((e) => e.streamOrdering <= ceiling);
        const visible = new Set((await reader.filterVisible(userId, m.roomId, inRange)).map((e) => e.eventId));
        const kept = inRange.filter((e) => visible.has(e.eventId) || e.pdu.sender === userId);
        for (const ev of await reader.format(kept, viewer, { bundleAggregations: false })) {
          file.push(archived(ev));
          written++;
          if (ev.event_id === m.eventId) sawMembership = true;
        }
        if (page.length < PAGE) break;
      }
    }
    // An invite or knock over federation is an out-of-band event outside the room's timeline.
    if (!sawMembership && member) {
      file.push(archived(outOfBand(member)));
      written++;
    }
    file.close();

    if (m.membership === 'invite' || m.membership === 'knock') {
      const stripped = member ? await strippedState(deps, member, m.membership) : [];
      out.writeJson([...roomDir, `${m.membership}_state.json`], stripped);
    } else if (known) {
      // The state the user can see: the current state while joined, else the state at their leave or ban.
      const group = m.membership === 'join' ? (await roomsRepo.getRoom(db, m.roomId))?.currentStateGroup ?? null : (member?.stateAfter ?? null);
      const state = group === null ? new Map() : await stateStore.stateEvents(db, group);
      out.writeJson([...roomDir, 'state.json'], (await reader.formatState(viewer, state)).map(archived));
    }

    const summary: RoomExportSummary = {
      room_id: m.roomId,
      membership: m.membership,
      membership_event_id: m.eventId,
      forgotten: forgotten.has(m.roomId),
      events: written,
      directory: `rooms/${dirName}`,
    };
    out.writeJson([...roomDir, 'membership.json'], summary);
    summaries.push(summary);
  }
  return summaries;
}

/** `unsigned.age` is relative to the moment of reading: meaningless in an archive. */
function archived(ev: ClientEvent): ClientEvent {
  if (!ev.unsigned) return ev;
  const { age: _age, ...unsigned } = ev.unsigned;
  const { unsigned: _old, ...rest } = ev;
  return Object.keys(unsigned).length ? { ...rest, unsigned } : rest;
}

function outOfBand(e: StoredEvent): ClientEvent {
  const ev: ClientEvent = {
    content: e.pdu.content,
    event_id: e.eventId,
    origin_server_ts: e.pdu.origin_server_ts,
    room_id: e.pdu.room_id,
    sender: e.pdu.sender,
    type: e.pdu.type,
  };
  if (e.pdu.state_key !== undefined) ev.state_key = e.pdu.state_key;
  return ev;
}

/** What the user was shown of the room with an invite or knock: carried over federation, or taken from our state. */
async function strippedState(deps: RoomHistoryDeps, member: StoredEvent, kind: 'invite' | 'knock'): Promise<unknown[]> {
  const carried = member.pdu.unsigned?.[kind === 'invite' ? 'invite_room_state' : 'knock_room_state'];
  if (Array.isArray(carried) && member.stateAfter === null) return carried as unknown[];
  if (member.stateAfter === null) return [];
  const db = deps.db.knex;
  const ids = await deps.rooms.state.stateIds(db, member.stateAfter);
  const keys = [...STRIPPED_TYPES.map((t) => stateMapKey(t, '')), stateMapKey('m.room.member', member.pdu.sender)];
  const wanted = keys.map((k) => ids.get(k)).filter((x): x is string => x !== undefined && x !== member.eventId);
  const loaded = await deps.rooms.events.getMany(db, wanted);
  return wanted.map((id) => loaded.get(id)).filter((e): e is StoredEvent => e !== undefined).map((e) => toStrippedState(e.pdu));
}
