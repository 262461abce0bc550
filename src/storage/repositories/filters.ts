import type { Db } from '../database.js';

export async function insertFilter(db: Db, userId: string, filterJson: string): Promise<number> {
  const [row] = await db('filters').insert({ user_id: userId, filter_json: filterJson }).returning('filter_id');
  return Number(typeof row === 'object' ? (row as { filter_id: number }).filter_id : row);
}

export async function getFilter(db: Db, userId: string, filterId: number): Promise<string | undefined> {
  const row = await db('filters').where({ user_id: userId, filter_id: filterId }).first('filter_json');
  return row?.filter_json;
}
