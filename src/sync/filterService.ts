import { MatrixError } from '../errors.js';
import { MAX_BODY_NESTING, jsonNestingExceeds } from '../util/jsonNesting.js';
import type { Database } from '../storage/database.js';
import { getFilter, insertFilter } from '../storage/repositories/filters.js';
import { LruCache } from '../util/lru.js';
import type { RoomEventFilter } from '../rooms/eventFilter.js';
import { asRoomEventFilter, roomEventFilterSchema, syncFilterSchema, type SyncFilter } from './filter.js';

/** Stored filters (POST/GET /user/{userId}/filter) and the /sync `filter` parameter. Filters never change. */
export class FilterService {
  private readonly cache = new LruCache<string, SyncFilter>(5_000);

  constructor(private readonly db: Database) {}

  /** Validates the shape (M_BAD_JSON otherwise) and stores the filter as uploaded. */
  async create(userId: string, body: unknown): Promise<string> {
    const filter = parseFilter(body, 'M_BAD_JSON');
    const id = await insertFilter(this.db.knex, userId, JSON.stringify(body));
    this.cache.set(`${userId}\u0000${id}`, filter);
    return String(id);
  }

  /** The filter as uploaded, or undefined. */
  async getRaw(userId: string, filterId: string): Promise<Record<string, unknown> | undefined> {
    if (!/^\d{1,15}$/.test(filterId)) return undefined;
    const json = await getFilter(this.db.knex, userId, Number(filterId));
    return json === undefined ? undefined : (JSON.parse(json) as Record<string, unknown>);
  }

  async get(userId: string, filterId: string): Promise<SyncFilter | undefined> {
    const key = `${userId}\u0000${filterId}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const raw = await this.getRaw(userId, filterId);
    if (raw === undefined) return undefined;
    const filter = parseFilter(raw, 'M_INVALID_PARAM');
    this.cache.set(key, filter);
    return filter;
  }

  /** The /sync `filter` parameter: a filter id, or inline JSON (starts with `{`). */
  async resolveParam(userId: string, param: string | undefined): Promise<SyncFilter> {
    if (param === undefined || param === '') return {};
    if (param.trimStart().startsWith('{')) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(param);
      } catch {
        throw new MatrixError('M_INVALID_PARAM', 'Inline filter is not valid JSON');
      }
      if (jsonNestingExceeds(param, MAX_BODY_NESTING)) throw new MatrixError('M_INVALID_PARAM', 'Inline filter is nested too deeply');
      return parseFilter(parsed, 'M_INVALID_PARAM');
    }
    const filter = await this.get(userId, param);
    if (!filter) throw new MatrixError('M_INVALID_PARAM', 'No such filter');
    return filter;
  }
}

/**
 * The `filter` parameter of /messages and /context: a RoomEventFilter as inline JSON, or the id of a stored
 * filter whose room.timeline part applies.
 */
export async function resolveRoomEventFilterParam(filters: FilterService, userId: string, param: string | undefined): Promise<RoomEventFilter | undefined> {
  if (param === undefined || param === '') return undefined;
  if (!param.trimStart().startsWith('{')) {
    const stored = await filters.get(userId, param);
    if (!stored) throw new MatrixError('M_INVALID_PARAM', 'Unknown filter');
    return asRoomEventFilter(stored.room?.timeline);
  }
  let value: unknown;
  try {
    value = JSON.parse(param);
  } catch {
    throw new MatrixError('M_NOT_JSON', 'filter is not valid JSON');
  }
  if (jsonNestingExceeds(param, MAX_BODY_NESTING)) throw new MatrixError('M_BAD_JSON', 'filter is nested too deeply');
  const parsed = roomEventFilterSchema.safeParse(value);
  if (!parsed.success) throw new MatrixError('M_BAD_JSON', `Invalid filter: ${parsed.error.issues[0]?.message}`);
  return asRoomEventFilter(parsed.data);
}

export function parseFilter(body: unknown, errcode: 'M_BAD_JSON' | 'M_INVALID_PARAM'): SyncFilter {
  const parsed = syncFilterSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new MatrixError(errcode, `Invalid filter at '${issue.path.join('.') || '(root)'}': ${issue.message}`);
  }
  return parsed.data;
}
