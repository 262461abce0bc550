import type { Db } from '../database.js';

// Queries of Synapse's admin user list (`GET /_synapse/admin/v2/users`): filters, order and paging in SQL.

export type UserOrder = 'name' | 'is_guest' | 'admin' | 'deactivated' | 'displayname' | 'avatar_url' | 'creation_ts' | 'last_seen_ts';

export interface UserListQuery {
  from: number;
  limit: number;
  guests: boolean;
  deactivated: boolean;
  admins: boolean | undefined;
  /** Substring of the user id (ignored when `name` is set). */
  userId: string | undefined;
  /** Substring of the localpart or the display name. */
  name: string | undefined;
  /** Ours: every row of `users` ends in `:serverName`, which the localpart match relies on. */
  serverName: string;
  orderBy: UserOrder;
  dir: 'f' | 'b';
}

export interface AdminUserRow {
  userId: string;
  isGuest: boolean;
  admin: boolean;
  deactivated: boolean;
  erased: boolean;
  displayname: string | null;
  avatarUrl: string | null;
  createdTs: number;
  appserviceId: string | null;
  lastSeenTs: number | null;
}

/** `%` and `_` in a search term match themselves, not any characters. */
export function likeContains(term: string): string {
  return `%${escapeLike(term)}%`;
}

function escapeLike(term: string): string {
  return term.replace(/[\\%_]/g, (c) => `\\${c}`);
}

const ORDER_COLUMNS: Readonly<Record<UserOrder, string>> = {
  name: 'users.user_id',
  is_guest: 'users.is_guest',
  admin: 'users.admin',
  deactivated: 'users.deactivated',
  displayname: 'users.displayname',
  avatar_url: 'users.avatar_url',
  creation_ts: 'users.created_ts',
  last_seen_ts: 'last_seen_ts',
};

function filtered(db: Db, q: UserListQuery) {
  const query = db('users');
  if (!q.guests) query.where('users.is_guest', false);
  if (!q.deactivated) query.where('users.deactivated', false);
  if (q.admins !== undefined) query.where('users.admin', q.admins);
  if (q.name !== undefined) {
    const pattern = likeContains(q.name.toLowerCase());
    // The localpart is what lies between '@' and ':serverName' (the same on every row of `users`).
    const localpart = `@${pattern}${escapeLike(`:${q.serverName}`.toLowerCase())}`;
    query.where((w) =>
      w.whereRaw("LOWER(users.user_id) LIKE ? ESCAPE '\\'", [localpart]).orWhereRaw("LOWER(users.displayname) LIKE ? ESCAPE '\\'", [pattern]),
    );
  } else if (q.userId !== undefined) {
    query.whereRaw("LOWER(users.user_id) LIKE ? ESCAPE '\\'", [likeContains(q.userId.toLowerCase())]);
  }
  return query;
}

export async function listUsers(db: Db, q: UserListQuery): Promise<{ users: AdminUserRow[]; total: number }> {
  const countRow = (await filtered(db, q).count<Array<{ n: number | string }>>({ n: '*' }))[0];
  const lastSeen = db('devices').select('user_id').max({ last_seen_ts: 'last_seen_ts' }).groupBy('user_id').as('seen');
  const dir = q.dir === 'b' ? 'desc' : 'asc';
  const rows: Array<Record<string, unknown>> = await filtered(db, q)
    .leftJoin(lastSeen, 'seen.user_id', 'users.user_id')
    .select('users.*', 'seen.last_seen_ts as last_seen_ts')
    .orderBy([{ column: ORDER_COLUMNS[q.orderBy], order: dir }, { column: 'users.user_id', order: 'asc' }])
    .offset(q.from)
    .limit(q.limit);
  return { users: rows.map(toAdminRow), total: Number(countRow?.n ?? 0) };
}

export async function lastSeenOf(db: Db, userId: string): Promise<number | null> {
  const row = (await db('devices').where({ user_id: userId }).max({ ts: 'last_seen_ts' }).first()) as { ts: number | string | null } | undefined;
  return row?.ts == null ? null : Number(row.ts);
}

function toAdminRow(r: Record<string, unknown>): AdminUserRow {
  return {
    userId: r.user_id as string,
    isGuest: Boolean(r.is_guest),
    admin: Boolean(r.admin),
    deactivated: Boolean(r.deactivated),
    erased: Boolean(r.erased),
    displayname: (r.displayname as string | null) ?? null,
    avatarUrl: (r.avatar_url as string | null) ?? null,
    createdTs: Number(r.created_ts),
    appserviceId: (r.appservice_id as string | null) ?? null,
    lastSeenTs: r.last_seen_ts == null ? null : Number(r.last_seen_ts),
  };
}

export async function setAdminFlag(db: Db, userId: string, admin: boolean): Promise<void> {
  await db('users').where({ user_id: userId }).update({ admin });
}

/** Reactivation (Synapse's `activate_account`): the account may log in again and is no longer erased. */
export async function markReactivated(db: Db, userId: string): Promise<void> {
  await db('users').where({ user_id: userId }).update({ deactivated: false, erased: false });
}
