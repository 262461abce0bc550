import { ignoredUsersOf } from '../directory/ignoredUsers.js';
import { forbidden } from '../errors.js';
import { toLegacyClientEvent } from '../rooms/clientEvent.js';
import { roomIdOfEvent } from '../rooms/eventFormat.js';
import { decodePaginationToken } from '../rooms/paginationToken.js';
import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { roomsEventsInStreamRange, type StoredEvent } from '../storage/repositories/events.js';
import * as stateRepo from '../storage/repositories/state.js';
import { membershipsTouchedInRange } from '../storage/repositories/sync.js';
import { stateMapKey } from '../types/pdu.js';
import type { SyncResponseBuilder } from './response.js';
import type { SyncService } from './syncService.js';
import { encodeSyncToken, maxPositions, parseSyncToken, type SyncPositions, type SyncTopic } from './token.js';

// The legacy event stream (spec: deprecated "GET /_matrix/client/v3/events"): one flat, ordered chunk of
// room events, presence, typing, receipts and account data. Its tokens are /sync tokens, so a client can
// hand a next_batch to /events and back. Room events are read forwards from the stream (the chunk is cut
// at `limit` and `end` points just after the last one sent); every other topic comes from the /sync providers.

export interface EventStreamRequest {
  userId: string;
  deviceId: string | undefined;
  /** A /sync token, or a room's topological token (room initialSync's `messages.end`); "now" when absent. */
  from?: string | undefined;
  timeoutMs: number;
  /** Room events per response. */
  limit: number;
  /** Only this room: one the user is joined to, or a world-readable room to peek into. */
  roomId?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface EventStreamResponse {
  chunk: Array<Record<string, unknown>>;
  start: string;
  end: string;
}

/** The topics other than the timeline that the legacy stream carries (to-device and device lists never were). */
const SIDE_TOPICS: readonly SyncTopic[] = ['accountData', 'receipts', 'typing', 'presence'];
const MAX_TIMEOUT_MS = 5 * 60_000;
/** Rows read per query while looking for visible room events. */
const PAGE = 100;
/** Past this many rows scanned one response stops and sends what it has (its `end` resumes there). */
const MAX_SCAN = 2000;

export class LegacyEventStream {
  constructor(private readonly deps: ServiceDeps & { rooms: RoomService; sync: SyncService }) {}

  async stream(req: EventStreamRequest): Promise<EventStreamResponse> {
    const now = await this.deps.sync.currentPositions();
    const from = req.from !== undefined && req.from !== '' ? parseLegacyToken(req.from, now) : now;
    const peek = req.roomId !== undefined ? await this.peekable(req.userId, req.roomId) : undefined;
    const timeout = Math.min(Math.max(0, req.timeoutMs), MAX_TIMEOUT_MS);
    const deadline = this.deps.clock.now() + timeout;
    const { notifier, clock } = this.deps;

    for (;;) {
      // The waiter is registered before positions are read, so a commit after the read always wakes it.
      const abort = new AbortController();
      const onOuterAbort = () => abort.abort();
      req.signal?.addEventListener('abort', onOuterAbort);
      const remaining = deadline - clock.now();
      const rooms = peek ? [peek] : [];
      const wake = remaining > 0 && !req.signal?.aborted ? notifier.wait(req.userId, remaining, abort.signal, rooms) : undefined;
      try {
        const out = await this.compute(req, from, peek);
        if (!wake || out.chunk.length > 0) return out;
        await wake;
        if (req.signal?.aborted || notifier.isClosed || clock.now() >= deadline) return await this.compute(req, from, peek);
      } finally {
        abort.abort();
        req.signal?.removeEventListener('abort', onOuterAbort);
      }
    }
  }

  /** A room named by `room_id`: allowed when joined or world-readable (Synapse's room previews). */
  private async peekable(userId: string, roomId: string): Promise<string> {
    const db = this.deps.db.knex;
    const m = await stateRepo.currentMembership(db, roomId, userId);
    if (m?.membership === 'join') return roomId;
    const hv = (await this.deps.rooms.reader.currentState(roomId).catch(() => undefined))?.get(stateMapKey('m.room.history_visibility', ''));
    if (hv?.content.history_visibility === 'world_readable') return roomId;
    throw forbidden('You are not allowed to view this room');
  }

  private async compute(req: EventStreamRequest, from: SyncPositions, peek: string | undefined): Promise<EventStreamResponse> {
    const latest = await this.deps.sync.currentPositions();
    const to = maxPositions(from, latest);
    const timeline = await this.roomEvents(req, from.timeline, to.timeline, peek);
    const side = await this.deps.sync.collect(req, from, to, SIDE_TOPICS, peek ? [peek] : undefined);
    const chunk = [...timeline.events, ...flatten(side, peek)];
    return { chunk, start: encodeSyncToken(from), end: encodeSyncToken({ ...to, timeline: timeline.end }) };
  }

  /** Visible room events in (after, upTo], oldest first, at most `limit`; `end` is where the next read starts. */
  private async roomEvents(
    req: EventStreamRequest,
    after: number,
    upTo: number,
    peek: string | undefined,
  ): Promise<{ events: Array<Record<string, unknown>>; end: number }> {
    if (after >= upTo || req.limit === 0) return { events: [], end: req.limit === 0 ? after : upTo };
    const db = this.deps.db.knex;
    const { reader } = this.deps.rooms;
    let roomIds: string[];
    if (peek) roomIds = [peek];
    else {
      // Rooms with events in range the user had a say in: a room left before the range has nothing to show.
      const rows = await membershipsTouchedInRange(db, req.userId, after, upTo);
      roomIds = rows.filter((m) => !((m.membership === 'leave' || m.membership === 'ban') && m.streamOrdering <= after)).map((m) => m.roomId);
    }
    const ignored = await ignoredUsersOf(db, req.userId);
    const accepted: StoredEvent[] = [];
    let cursor = after;
    let scanned = 0;
    while (accepted.length < req.limit && scanned < MAX_SCAN) {
      const page = await roomsEventsInStreamRange(db, roomIds, cursor, upTo, PAGE);
      if (page.length === 0) {
        cursor = upTo;
        break;
      }
      scanned += page.length;
      const visible = new Set<string>();
      for (const [roomId, events] of groupByRoom(page)) for (const e of await reader.filterVisible(req.userId, roomId, events, ignored)) visible.add(e.eventId);
      for (const e of page) {
        cursor = e.streamOrdering;
        if (!visible.has(e.eventId)) continue;
        accepted.push(e);
        if (accepted.length >= req.limit) break;
      }
      if (page.length < PAGE && accepted.length < req.limit) {
        cursor = upTo;
        break;
      }
    }
    const events = await reader.format(accepted, { userId: req.userId, deviceId: req.deviceId }, { includeRoomId: true });
    return { events: events.map(toLegacyClientEvent), end: cursor };
  }
}

/** A /sync token, or a topological room token whose stream position starts the timeline ("now" elsewhere). */
export function parseLegacyToken(token: string, now: SyncPositions): SyncPositions {
  const topo = decodePaginationToken(token);
  if (topo) return { ...now, timeline: Math.max(0, Math.min(topo.stream, now.timeline)) };
  return parseSyncToken(token);
}

function groupByRoom(events: readonly StoredEvent[]): Map<string, StoredEvent[]> {
  const out = new Map<string, StoredEvent[]>();
  for (const e of events) {
    const roomId = roomIdOfEvent(e.pdu, e.eventId) ?? '';
    let list = out.get(roomId);
    if (!list) out.set(roomId, (list = []));
    list.push(e);
  }
  return out;
}

/** The /sync shape of the side topics as legacy stream entries: room-scoped ones carry their room_id. */
function flatten(response: SyncResponseBuilder, peek: string | undefined): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const p of response.presence) out.push({ ...p, content: { ...p.content, user_id: p.sender } });
  if (!peek) for (const a of response.accountData) out.push({ ...a });
  for (const [roomId, room] of response.join) {
    if (peek && roomId !== peek) continue;
    for (const e of room.ephemeral.events) out.push({ ...e, room_id: roomId });
    for (const e of room.account_data.events) out.push({ ...e, room_id: roomId });
  }
  for (const [roomId, room] of response.leave) {
    if (peek && roomId !== peek) continue;
    for (const e of room.account_data.events) out.push({ ...e, room_id: roomId });
  }
  return out;
}
