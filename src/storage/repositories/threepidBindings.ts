import type { Db } from '../database.js';

/** Bindings made through this homeserver: which identity servers hold a user's third-party identifier. */
export interface ThreepidBinding {
  medium: string;
  address: string;
  idServer: string;
}

export async function addBinding(db: Db, userId: string, b: ThreepidBinding): Promise<void> {
  await db('user_threepid_id_server')
    .insert({ user_id: userId, medium: b.medium, address: b.address, id_server: b.idServer })
    .onConflict(['user_id', 'medium', 'address', 'id_server'])
    .ignore();
}

export async function idServersFor(db: Db, userId: string, medium: string, address: string): Promise<string[]> {
  const rows = await db('user_threepid_id_server').where({ user_id: userId, medium, address }).select('id_server');
  return rows.map((r: { id_server: string }) => r.id_server);
}

export async function bindingsOf(db: Db, userId: string): Promise<ThreepidBinding[]> {
  const rows = await db('user_threepid_id_server').where({ user_id: userId }).select('medium', 'address', 'id_server');
  return rows.map((r: { medium: string; address: string; id_server: string }) => ({ medium: r.medium, address: r.address, idServer: r.id_server }));
}

export async function removeBinding(db: Db, userId: string, b: ThreepidBinding): Promise<void> {
  await db('user_threepid_id_server').where({ user_id: userId, medium: b.medium, address: b.address, id_server: b.idServer }).delete();
}
