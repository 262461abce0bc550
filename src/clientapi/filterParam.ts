import { z } from 'zod';
import { MatrixError } from '../errors.js';
import type { Services } from '../homeserver.js';

const roomEventFilter = z
  .object({
    limit: z.number().int().min(0).optional(),
    types: z.array(z.string()).optional(),
    not_types: z.array(z.string()).optional(),
    senders: z.array(z.string()).optional(),
    not_senders: z.array(z.string()).optional(),
    rooms: z.array(z.string()).optional(),
    not_rooms: z.array(z.string()).optional(),
    contains_url: z.boolean().optional(),
    lazy_load_members: z.boolean().optional(),
    include_redundant_members: z.boolean().optional(),
  })
  .loose();

/** The `filter` query parameter of /messages and /context: inline JSON or a stored filter's room.timeline. */
export async function parseFilterParam(services: Services, userId: string, raw: string | undefined): Promise<z.output<typeof roomEventFilter> | undefined> {
  if (raw === undefined || raw === '') return undefined;
  let value: unknown;
  if (raw.trimStart().startsWith('{')) {
    try {
      value = JSON.parse(raw);
    } catch {
      throw new MatrixError('M_NOT_JSON', 'filter is not valid JSON');
    }
  } else {
    const stored = await services.db.knex('filters').where({ user_id: userId, filter_id: Number(raw) || -1 }).first('filter_json');
    if (!stored) throw new MatrixError('M_INVALID_PARAM', 'Unknown filter');
    const full = JSON.parse(stored.filter_json) as { room?: { timeline?: unknown } };
    value = full.room?.timeline ?? {};
  }
  const parsed = roomEventFilter.safeParse(value);
  if (!parsed.success) throw new MatrixError('M_BAD_JSON', `Invalid filter: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}
