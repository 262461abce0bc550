import type { Db } from '../database.js';

// Application services' own room directories, one per third-party network (instance `<appservice id>|<network id>`).

export async function publishForNetwork(db: Db, appserviceId: string, networkId: string, roomId: string): Promise<void> {
  await db('appservice_room_list').insert({ appservice_id: appserviceId, network_id: networkId, room_id: roomId }).onConflict(['appservice_id', 'network_id', 'room_id']).ignore();
}

export async function unpublishForNetwork(db: Db, appserviceId: string, networkId: string, roomId: string): Promise<void> {
  await db('appservice_room_list').where({ appservice_id: appserviceId, network_id: networkId, room_id: roomId }).delete();
}

/** The rooms of one network's list, or of every network's when `instance` is undefined. */
export async function networkRoomIds(db: Db, instance?: { appserviceId: string; networkId: string }): Promise<string[]> {
  const q = db('appservice_room_list').distinct('room_id');
  if (instance) q.where({ appservice_id: instance.appserviceId, network_id: instance.networkId });
  const rows: Array<{ room_id: string }> = await q;
  return rows.map((r) => r.room_id);
}
