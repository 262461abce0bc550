import type { Db } from '../database.js';
import { chunks } from '../../util/chunks.js';

// Queries behind the user directory (spec: "POST /user_directory/search") and the public-room checks it
// needs. Matching is a case-insensitive substring prefilter; the caller ranks and checks exactly.

/** A LIKE pattern matching `s` anywhere, with LIKE's wildcards in `s` escaped (escape character `\`). */
function contains(s: string): string {
  return `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

const CHUNK = 500;


export interface LocalDirectoryUser {
  userId: string;
  displayName: string | null;
  avatarUrl: string | null;
}

/** Active local accounts whose user ID or display name contains every term (terms already lowercased). */
export async function localUsersMatching(db: Db, terms: readonly string[], limit: number): Promise<LocalDirectoryUser[]> {
  const q = db('users').where('deactivated', false).select('user_id', 'displayname', 'avatar_url').orderBy('user_id').limit(limit);
  for (const term of terms) {
    const pattern = contains(term);
    q.where((w) => {
      w.whereRaw("lower(user_id) like ? escape '\\'", [pattern]).orWhereRaw("lower(coalesce(displayname, '')) like ? escape '\\'", [pattern]);
    });
  }
  const rows: Array<{ user_id: string; displayname: string | null; avatar_url: string | null }> = await q;
  return rows.map((r) => ({ userId: r.user_id, displayName: r.displayname ?? null, avatarUrl: r.avatar_url ?? null }));
}

/**
 * Joined members of other servers whose user ID or member event contains every term: candidates only,
 * the caller checks the display name. `roomIds` undefined means every room.
 */
export async function remoteMembersMatching(
  db: Db,
  localServer: string,
  terms: readonly string[],
  roomIds: readonly string[] | undefined,
  limit: number,
): Promise<Array<{ userId: string; roomId: string; json: string }>> {
  const run = async (rooms: readonly string[] | undefined) => {
    const q = db('current_state as cs')
      .join('events as e', 'e.event_id', 'cs.event_id')
      .where({ 'cs.type': 'm.room.member', 'cs.membership': 'join' })
      .whereRaw("cs.state_key not like ? escape '\\'", [`%:${localServer.replace(/[\\%_]/g, (c) => `\\${c}`)}`])
      .select('cs.state_key', 'cs.room_id', 'e.json')
      .limit(limit);
    if (rooms) q.whereIn('cs.room_id', rooms as string[]);
    for (const term of terms) {
      const pattern = contains(term);
      q.where((w) => {
        w.whereRaw("lower(cs.state_key) like ? escape '\\'", [pattern]).orWhereRaw("lower(e.json) like ? escape '\\'", [pattern]);
      });
    }
    const rows: Array<{ state_key: string; room_id: string; json: string }> = await q;
    return rows.map((r) => ({ userId: r.state_key, roomId: r.room_id, json: r.json }));
  };
  if (roomIds === undefined) return run(undefined);
  const out: Array<{ userId: string; roomId: string; json: string }> = [];
  for (const part of chunks(roomIds, CHUNK)) {
    out.push(...(await run(part)));
    if (out.length >= limit) break;
  }
  return out;
}

/** For each user, the rooms they are joined to (only users with at least one appear). */
export async function joinedRoomsOf(db: Db, userIds: readonly string[]): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (const part of chunks(userIds, CHUNK)) {
    const rows: Array<{ state_key: string; room_id: string }> = await db('current_state')
      .where({ type: 'm.room.member', membership: 'join' })
      .whereIn('state_key', part)
      .select('state_key', 'room_id');
    for (const r of rows) {
      let set = out.get(r.state_key);
      if (!set) out.set(r.state_key, (set = new Set()));
      set.add(r.room_id);
    }
  }
  return out;
}

/**
 * Rooms anyone may look into: a `public` join rule or `world_readable` history. Both keys survive
 * redaction, so the stored JSON answers even for redacted events.
 */
export async function openRoomIds(db: Db, serverName: string): Promise<Set<string>> {
  const rows: Array<{ room_id: string; type: string; json: string }> = await db('current_state as cs')
    .join('events as e', 'e.event_id', 'cs.event_id')
    .whereIn('cs.type', ['m.room.join_rules', 'm.room.history_visibility'])
    .where('cs.state_key', '')
    // Only rooms this server is still in: a room all local users left is a stale copy (as Synapse).
    .whereExists((q) =>
      q
        .select(db.raw('1'))
        .from('current_state as m')
        .whereRaw('m.room_id = cs.room_id')
        .where({ 'm.type': 'm.room.member', 'm.membership': 'join' })
        .whereRaw("m.state_key LIKE ? ESCAPE '!'", [`%:${serverName.replace(/[!%_]/g, '!$&')}`]),
    )
    .select('cs.room_id', 'cs.type', 'e.json');
  const out = new Set<string>();
  for (const r of rows) {
    let content: Record<string, unknown> = {};
    try {
      content = (JSON.parse(r.json) as { content?: Record<string, unknown> }).content ?? {};
    } catch {
      continue;
    }
    if (r.type === 'm.room.join_rules' && content.join_rule === 'public') out.add(r.room_id);
    if (r.type === 'm.room.history_visibility' && content.history_visibility === 'world_readable') out.add(r.room_id);
  }
  return out;
}
