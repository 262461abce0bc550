import type { Db } from '../database.js';

export interface PusherRow {
  userId: string;
  appId: string;
  pushkey: string;
  kind: string;
  appDisplayName: string;
  deviceDisplayName: string;
  profileTag: string | null;
  lang: string;
  data: Record<string, unknown>;
  deviceId: string | null;
  createdTs: number;
}

interface Row {
  user_id: string;
  app_id: string;
  pushkey: string;
  kind: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  data_json: string;
  device_id: string | null;
  created_ts: number | string;
}

const toRow = (r: Row): PusherRow => ({
  userId: r.user_id,
  appId: r.app_id,
  pushkey: r.pushkey,
  kind: r.kind,
  appDisplayName: r.app_display_name,
  deviceDisplayName: r.device_display_name,
  profileTag: r.profile_tag,
  lang: r.lang,
  data: JSON.parse(r.data_json) as Record<string, unknown>,
  deviceId: r.device_id,
  createdTs: Number(r.created_ts),
});

export async function listPushers(db: Db, userId: string): Promise<PusherRow[]> {
  const rows: Row[] = await db('pushers').where('user_id', userId).orderBy('id');
  return rows.map(toRow);
}

/** The pushers of several users at once (delivery after an event). */
export async function pushersForUsers(db: Db, userIds: readonly string[]): Promise<PusherRow[]> {
  if (userIds.length === 0) return [];
  const out: PusherRow[] = [];
  for (let i = 0; i < userIds.length; i += 200) {
    const rows: Row[] = await db('pushers').whereIn('user_id', userIds.slice(i, i + 200)).orderBy('id');
    out.push(...rows.map(toRow));
  }
  return out;
}

/** Inserts or replaces the user's pusher with this (app_id, pushkey). The creation time survives an update. */
export async function upsertPusher(db: Db, p: PusherRow): Promise<void> {
  const values = {
    user_id: p.userId,
    app_id: p.appId,
    pushkey: p.pushkey,
    kind: p.kind,
    app_display_name: p.appDisplayName,
    device_display_name: p.deviceDisplayName,
    profile_tag: p.profileTag,
    lang: p.lang,
    data_json: JSON.stringify(p.data),
    device_id: p.deviceId,
    created_ts: p.createdTs,
  };
  const { created_ts: _created, user_id: _u, app_id: _a, pushkey: _k, ...merge } = values;
  await db('pushers').insert(values).onConflict(['app_id', 'pushkey', 'user_id']).merge(merge);
}

export async function deletePusher(db: Db, userId: string, appId: string, pushkey: string): Promise<boolean> {
  return (await db('pushers').where({ user_id: userId, app_id: appId, pushkey }).delete()) > 0;
}

/** Removes the pushers with this (app_id, pushkey) of every other user (`append: false`). Returns their owners. */
export async function deletePushersOfOtherUsers(db: Db, userId: string, appId: string, pushkey: string): Promise<string[]> {
  const rows: Array<{ user_id: string }> = await db('pushers').where({ app_id: appId, pushkey }).andWhereNot('user_id', userId).select('user_id');
  if (rows.length) await db('pushers').where({ app_id: appId, pushkey }).andWhereNot('user_id', userId).delete();
  return rows.map((r) => r.user_id);
}
