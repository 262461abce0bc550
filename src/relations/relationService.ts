import { MatrixError, notFound } from '../errors.js';
import type { ClientEvent } from '../rooms/clientEvent.js';
import { decodePaginationToken, encodePaginationToken } from '../rooms/paginationToken.js';
import type { Viewer } from '../rooms/roomReader.js';
import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import type { StoredEvent } from '../storage/repositories/events.js';
import { childrenOf, relationsPage, threadRoots, type RelationRow } from '../storage/repositories/relations.js';
import { relationOf } from './extract.js';
import type { EventIndexer } from './indexer.js';

/** Relation types the server aggregates into `unsigned["m.relations"]` (spec: "Aggregations of child events"). */
const BUNDLED = ['m.replace', 'm.thread', 'm.reference'] as const;
type BundledType = (typeof BUNDLED)[number];

/** Spec: homeservers SHOULD traverse at least 3 levels for `recurse=true`. */
const RECURSION_DEPTH = 3;
const MAX_LIMIT = 100;
/** How long a read waits for the indexer to catch up with writes already committed. */
const INDEX_WAIT_MS = 200;
/** After a wait ran out (a backlog), reads stop waiting for this long instead of each waiting again. */
const BACKLOG_GRACE_MS = 2_000;

export interface FormatOptions {
  includeRoomId?: boolean;
}

/** Spec "Validity of replacement events": which child may replace `original`. */
export function isValidReplacement(original: StoredEvent, edit: StoredEvent): boolean {
  if (original.pdu.room_id !== edit.pdu.room_id) return false;
  if (original.pdu.sender !== edit.pdu.sender || original.pdu.type !== edit.pdu.type) return false;
  if (original.pdu.state_key !== undefined || edit.pdu.state_key !== undefined) return false;
  // A replacement of a replacement is ignored.
  if (relationOf(original.pdu)?.relType === 'm.replace') return false;
  if (edit.redactedBy) return false;
  // Encrypted replacements carry m.new_content inside the ciphertext, out of the server's sight.
  if (edit.pdu.type === 'm.room.encrypted') return true;
  const newContent = edit.pdu.content['m.new_content'];
  return newContent !== null && typeof newContent === 'object' && !Array.isArray(newContent);
}

/** Most recent by origin_server_ts, ties broken by the lexicographically greater event id. */
function newer(a: StoredEvent, b: StoredEvent): boolean {
  if (a.pdu.origin_server_ts !== b.pdu.origin_server_ts) return a.pdu.origin_server_ts > b.pdu.origin_server_ts;
  return a.eventId > b.eventId;
}

/** Relations (GET /relations), threads (GET /threads) and bundled aggregations for every formatted event. */
export class RelationService {
  constructor(
    private readonly deps: ServiceDeps & { rooms: RoomService },
    readonly indexer: EventIndexer,
  ) {}

  private get db() {
    return this.deps.db.knex;
  }

  /** Waits (briefly) until writes committed so far are indexed. */
  private async caughtUp(): Promise<void> {
    if (Date.now() - this.lastTimedOut < BACKLOG_GRACE_MS) return;
    const timedOut = await Promise.race([
      this.indexer.idle().then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), INDEX_WAIT_MS).unref()),
    ]);
    if (timedOut) this.lastTimedOut = Date.now();
  }

  private lastTimedOut = 0;

  /**
   * `unsigned["m.relations"]` for each event that has something to bundle, keyed by event id. Only
   * children the viewer may see count. Installed into RoomReader.format() by the composition root.
   */
  async aggregate(
    events: readonly StoredEvent[],
    viewer: Viewer,
    opts: FormatOptions,
    types: readonly BundledType[] = BUNDLED,
  ): Promise<Map<string, Record<string, unknown>>> {
    const out = new Map<string, Record<string, unknown>>();
    // State events are not aggregated, and a redacted event no longer bundles anything.
    const parents = events.filter((e) => e.pdu.state_key === undefined && !e.redactedBy && !e.rejected);
    if (!parents.length) return out;
    await this.caughtUp();
    const byRoom = new Map<string, StoredEvent[]>();
    for (const p of parents) byRoom.set(p.pdu.room_id, [...(byRoom.get(p.pdu.room_id) ?? []), p]);

    const latestThreadEvents: StoredEvent[] = [];
    const threadSummaries = new Map<string, { latest: StoredEvent; count: number; participated: boolean }>();
    const edits = new Map<string, StoredEvent>();
    const references = new Map<string, string[]>();

    for (const [roomId, roomParents] of byRoom) {
      const rows = await childrenOf(this.db, roomId, roomParents.map((p) => p.eventId), types);
      if (!rows.length) continue;
      const children = await this.visibleChildren(viewer, roomId, rows);
      const byParent = new Map<string, Array<{ row: RelationRow; ev: StoredEvent }>>();
      for (const row of rows) {
        const ev = children.get(row.eventId);
        if (!ev) continue;
        byParent.set(row.relatesToId, [...(byParent.get(row.relatesToId) ?? []), { row, ev }]);
      }
      for (const parent of roomParents) {
        const kids = byParent.get(parent.eventId);
        if (!kids) continue;
        let edit: StoredEvent | undefined;
        let thread: { latest: StoredEvent; count: number; participated: boolean } | undefined;
        const refs: string[] = [];
        for (const { row, ev } of kids) {
          if (row.relType === 'm.replace') {
            if (isValidReplacement(parent, ev) && (!edit || newer(ev, edit))) edit = ev;
          } else if (row.relType === 'm.thread') {
            if (!thread) thread = { latest: ev, count: 0, participated: parent.pdu.sender === viewer.userId };
            thread.count += 1;
            if (ev.streamOrdering > thread.latest.streamOrdering) thread.latest = ev;
            if (ev.pdu.sender === viewer.userId) thread.participated = true;
          } else if (row.relType === 'm.reference') {
            refs.push(ev.eventId);
          }
        }
        if (edit) edits.set(parent.eventId, edit);
        if (thread) {
          threadSummaries.set(parent.eventId, thread);
          latestThreadEvents.push(thread.latest);
        }
        if (refs.length) references.set(parent.eventId, refs);
      }
    }
    if (!edits.size && !threadSummaries.size && !references.size) return out;

    // The bundled events are formatted like any other, without a second level of aggregation except
    // that a thread's latest event carries its own edit.
    const bundledEvents = [...edits.values(), ...latestThreadEvents];
    const formatted = await this.deps.rooms.reader.format(bundledEvents, viewer, { ...opts, bundleAggregations: false });
    const formattedById = new Map<string, ClientEvent>(formatted.map((e) => [e.event_id, e]));
    if (latestThreadEvents.length) {
      const latestEdits = await this.aggregate(latestThreadEvents, viewer, opts, ['m.replace']);
      for (const ev of latestThreadEvents) {
        const bundle = latestEdits.get(ev.eventId);
        const f = formattedById.get(ev.eventId);
        if (bundle && f) f.unsigned = { ...f.unsigned, 'm.relations': bundle };
      }
    }
    for (const parent of parents) {
      const relations: Record<string, unknown> = {};
      const edit = edits.get(parent.eventId);
      if (edit) relations['m.replace'] = formattedById.get(edit.eventId);
      const thread = threadSummaries.get(parent.eventId);
      if (thread) {
        relations['m.thread'] = {
          latest_event: formattedById.get(thread.latest.eventId),
          count: thread.count,
          current_user_participated: thread.participated,
        };
      }
      const refs = references.get(parent.eventId);
      if (refs) relations['m.reference'] = { chunk: refs.map((event_id) => ({ event_id })) };
      if (Object.keys(relations).length) out.set(parent.eventId, relations);
    }
    return out;
  }

  private async visibleChildren(viewer: Viewer, roomId: string, rows: readonly RelationRow[]): Promise<Map<string, StoredEvent>> {
    const loaded = await this.deps.rooms.events.getMany(this.db, rows.map((r) => r.eventId));
    const candidates = rows
      .map((r) => loaded.get(r.eventId))
      .filter((e): e is StoredEvent => e !== undefined && !e.rejected && !e.redactedBy && e.pdu.room_id === roomId);
    const visible = await this.deps.rooms.reader.filterVisible(viewer.userId, roomId, candidates);
    return new Map(visible.map((e) => [e.eventId, e]));
  }

  /** The parent event if the viewer may see it, else 404 (spec: the same answer for unknown and hidden). */
  private async visibleParent(viewer: Viewer, roomId: string, eventId: string): Promise<{ parent: StoredEvent; ceiling: number }> {
    const access = await this.deps.rooms.reader.readableUpTo(viewer.userId, roomId).catch(() => undefined);
    if (!access) throw notFound('Event not found');
    const parent = await this.deps.rooms.events.get(this.db, eventId);
    if (!parent || parent.pdu.room_id !== roomId || parent.rejected) throw notFound('Event not found');
    const ceiling = access.untilStream ?? Number.MAX_SAFE_INTEGER;
    if (parent.streamOrdering > ceiling) throw notFound('Event not found');
    const [visible] = await this.deps.rooms.reader.filterVisible(viewer.userId, roomId, [parent]);
    if (!visible) throw notFound('Event not found');
    return { parent, ceiling };
  }

  private async streamOfToken(roomId: string, token: string): Promise<number> {
    return (await this.deps.rooms.reader.resolveToken(roomId, token)).stream;
  }

  /** GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]] */
  async relations(
    viewer: Viewer,
    roomId: string,
    eventId: string,
    params: {
      relType?: string | undefined;
      eventType?: string | undefined;
      from?: string | undefined;
      to?: string | undefined;
      limit?: number | undefined;
      dir: 'b' | 'f';
      recurse?: boolean | undefined;
    },
  ): Promise<{ chunk: ClientEvent[]; next_batch?: string; prev_batch?: string; recursion_depth?: number }> {
    const { ceiling } = await this.visibleParent(viewer, roomId, eventId);
    await this.caughtUp();
    const limit = Math.min(Math.max(params.limit ?? 50, 1), MAX_LIMIT);

    // With recurse, children of children count too, up to RECURSION_DEPTH levels (cycles are cut).
    const depth = params.recurse === true ? RECURSION_DEPTH : 1;
    const parentIds = [eventId];
    const seen = new Set(parentIds);
    let frontier = [eventId];
    for (let level = 1; level < depth && frontier.length; level++) {
      const rows = await childrenOf(this.db, roomId, frontier);
      frontier = rows.map((r) => r.eventId).filter((id) => !seen.has(id));
      for (const id of frontier) seen.add(id);
      parentIds.push(...frontier);
    }

    let cursor = params.from !== undefined ? await this.streamOfToken(roomId, params.from) : params.dir === 'b' ? Number.MAX_SAFE_INTEGER : 0;
    const to = params.to !== undefined ? await this.streamOfToken(roomId, params.to) : undefined;
    const chunk: StoredEvent[] = [];
    let exhausted = false;
    let scanned = 0;
    while (chunk.length < limit && !exhausted && scanned < 5_000) {
      const pageSize = Math.max(limit * 2, 20);
      const rows = await relationsPage(this.db, {
        roomId, parentIds, relType: params.relType, eventType: params.eventType, dir: params.dir, from: cursor, to, ceiling, limit: pageSize,
      });
      if (rows.length < pageSize) exhausted = true;
      if (!rows.length) break;
      scanned += rows.length;
      const visible = await this.visibleChildren(viewer, roomId, rows);
      for (const row of rows) {
        if (chunk.length >= limit) {
          exhausted = false;
          break;
        }
        cursor = params.dir === 'b' ? row.streamOrdering - 1 : row.streamOrdering;
        const ev = visible.get(row.eventId);
        if (ev) chunk.push(ev);
      }
    }
    const response: { chunk: ClientEvent[]; next_batch?: string; prev_batch?: string; recursion_depth?: number } = {
      chunk: await this.deps.rooms.reader.format(chunk, viewer),
    };
    if (!exhausted) response.next_batch = encodePaginationToken({ depth: 0, stream: cursor });
    if (params.from !== undefined) response.prev_batch = params.from;
    if (params.recurse !== undefined) response.recursion_depth = depth;
    return response;
  }

  /** GET /_matrix/client/v1/rooms/{roomId}/threads — thread roots by latest activity, newest first. */
  async threads(
    viewer: Viewer,
    roomId: string,
    params: { include: 'all' | 'participated'; from?: string | undefined; limit?: number | undefined },
  ): Promise<{ chunk: ClientEvent[]; next_batch?: string }> {
    const access = await this.deps.rooms.reader.readableUpTo(viewer.userId, roomId);
    const ceiling = access.untilStream ?? Number.MAX_SAFE_INTEGER;
    let before = Number.MAX_SAFE_INTEGER;
    if (params.from !== undefined) {
      const point = decodePaginationToken(params.from);
      if (!point || point.depth !== 0) throw new MatrixError('M_INVALID_PARAM', 'Unknown pagination token');
      before = point.stream;
    }
    await this.caughtUp();
    const limit = Math.min(Math.max(params.limit ?? 20, 1), MAX_LIMIT);
    const roots: StoredEvent[] = [];
    let exhausted = false;
    let scanned = 0;
    while (roots.length < limit && !exhausted && scanned < 5_000) {
      const pageSize = Math.max(limit * 2, 20);
      const rows = await threadRoots(this.db, {
        roomId, beforeLatest: before, ceiling, limit: pageSize, participant: params.include === 'participated' ? viewer.userId : undefined,
      });
      if (rows.length < pageSize) exhausted = true;
      if (!rows.length) break;
      scanned += rows.length;
      const loaded = await this.deps.rooms.events.getMany(this.db, rows.map((r) => r.rootId));
      const candidates = rows
        .map((r) => loaded.get(r.rootId))
        .filter((e): e is StoredEvent => e !== undefined && !e.rejected && e.pdu.room_id === roomId && e.streamOrdering <= ceiling);
      const visible = new Set((await this.deps.rooms.reader.filterVisible(viewer.userId, roomId, candidates)).map((e) => e.eventId));
      for (const row of rows) {
        if (roots.length >= limit) {
          exhausted = false;
          break;
        }
        before = row.latest;
        if (visible.has(row.rootId)) roots.push(loaded.get(row.rootId)!);
      }
    }
    const response: { chunk: ClientEvent[]; next_batch?: string } = { chunk: await this.deps.rooms.reader.format(roots, viewer) };
    if (!exhausted) response.next_batch = encodePaginationToken({ depth: 0, stream: before });
    return response;
  }
}
