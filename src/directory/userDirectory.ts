import type { ServiceDeps } from '../serviceDeps.js';
import { roomsForUser } from '../storage/repositories/state.js';
import { joinedRoomsOf, localUsersMatching, openRoomIds, remoteMembersMatching } from '../storage/repositories/userDirectory.js';

// Spec: Client-Server API, "User directory" (POST /user_directory/search). Searched: users who share a
// room with the searcher and users in rooms anyone may look into (public join rule or world-readable),
// or, with `user_directory.search_all_users`, every local account and every member of a known room.
// The searcher finds themself only through a public or world-readable room, as on Synapse.

export interface DirectoryResult {
  user_id: string;
  display_name?: string;
  avatar_url?: string;
}

/** How many candidates a search considers before ranking. */
const CANDIDATES = 1000;
export const MAX_RESULTS = 50;

interface Candidate {
  userId: string;
  displayName: string | null;
  avatarUrl: string | null;
  sharesRoom: boolean;
}

export class UserDirectoryService {
  constructor(private readonly deps: ServiceDeps) {}

  async search(searcher: string, searchTerm: string, limit: number): Promise<{ results: DirectoryResult[]; limited: boolean }> {
    const { config, db, serverName } = this.deps;
    const terms = searchTerm.toLowerCase().split(/\s+/).filter(Boolean);
    if (!config.user_directory.enabled || terms.length === 0 || limit <= 0) return { results: [], limited: false };
    const searchAll = config.user_directory.search_all_users;

    const own = new Set((await roomsForUser(db.knex, searcher, ['join'])).map((r) => r.roomId));
    const open = searchAll ? new Set<string>() : await openRoomIds(db.knex, serverName);
    const candidates = new Map<string, Candidate>();

    // Local accounts: the global profile.
    const locals = await localUsersMatching(db.knex, terms, CANDIDATES);
    const roomsOfLocals = await joinedRoomsOf(db.knex, locals.map((u) => u.userId));
    for (const u of locals) {
      const rooms = roomsOfLocals.get(u.userId) ?? new Set<string>();
      // The searcher shares no room with themself: they are found only as anyone else in a public room is.
      const sharesRoom = u.userId !== searcher && [...rooms].some((r) => own.has(r));
      if (!searchAll && !sharesRoom && ![...rooms].some((r) => open.has(r))) continue;
      candidates.set(u.userId, { ...u, sharesRoom });
    }

    // Users of other servers: as their member event shows them.
    const visibleRooms = searchAll ? undefined : [...new Set([...own, ...open])];
    if (visibleRooms === undefined || visibleRooms.length > 0) {
      for (const m of await remoteMembersMatching(db.knex, serverName, terms, visibleRooms, CANDIDATES)) {
        let content: Record<string, unknown> = {};
        try {
          content = (JSON.parse(m.json) as { content?: Record<string, unknown> }).content ?? {};
        } catch {
          // unreadable member event: the user ID alone
        }
        const sharesRoom = own.has(m.roomId);
        const existing = candidates.get(m.userId);
        if (existing) {
          existing.sharesRoom ||= sharesRoom;
          continue;
        }
        candidates.set(m.userId, {
          userId: m.userId,
          displayName: typeof content.displayname === 'string' ? content.displayname : null,
          avatarUrl: typeof content.avatar_url === 'string' ? content.avatar_url : null,
          sharesRoom,
        });
      }
    }

    const ranked = [...candidates.values()]
      .map((c) => ({ c, rank: rank(c, terms, searchTerm.trim().toLowerCase()) }))
      .filter((x) => x.rank > 0)
      .sort(
        (a, b) =>
          b.rank - a.rank ||
          Number(b.c.sharesRoom) - Number(a.c.sharesRoom) ||
          Number(b.c.displayName !== null) - Number(a.c.displayName !== null) ||
          Number(b.c.avatarUrl !== null) - Number(a.c.avatarUrl !== null) ||
          (a.c.userId < b.c.userId ? -1 : 1),
      );
    const capped = Math.min(limit, MAX_RESULTS);
    const results = ranked.slice(0, capped).map(({ c }) => {
      const r: DirectoryResult = { user_id: c.userId };
      if (c.displayName) r.display_name = c.displayName;
      if (c.avatarUrl) r.avatar_url = c.avatarUrl;
      return r;
    });
    return { results, limited: ranked.length > capped };
  }
}

/**
 * 0 when some term matches neither the user ID nor the display name; otherwise higher for better matches:
 * the whole term equal to the localpart or display name, then a prefix, then a word prefix, then anywhere.
 */
function rank(c: Candidate, terms: readonly string[], whole: string): number {
  const localpart = c.userId.slice(1, c.userId.indexOf(':') === -1 ? undefined : c.userId.indexOf(':')).toLowerCase();
  const id = c.userId.toLowerCase();
  const name = (c.displayName ?? '').toLowerCase();
  if (!terms.every((t) => id.includes(t) || name.includes(t))) return 0;
  if (localpart === whole || name === whole) return 4;
  if (localpart.startsWith(whole) || name.startsWith(whole)) return 3;
  const words = [...name.split(/[\s\-_.]+/), ...localpart.split(/[\-_.=/]+/)];
  if (terms.every((t) => words.some((w) => w.startsWith(t)))) return 2;
  return 1;
}
