import type { Database } from '../storage/database.js';
import { getAccountData, putAccountData } from '../storage/repositories/accountData.js';
import type { Notifier } from './notifier.js';

/** Account data (spec: "Client config"): global entries use roomId ''. */
export class AccountDataService {
  constructor(private readonly deps: { db: Database; notifier: Notifier }) {}

  /** Sets an entry in a stream write and wakes the user's /sync; returns the new stream position. */
  async put(userId: string, roomId: string, type: string, content: Record<string, unknown>): Promise<number> {
    const id = await this.deps.db.write((trx) => putAccountData(trx, userId, roomId, type, content));
    this.deps.notifier.notifyUsers([userId]);
    return id;
  }

  get(userId: string, roomId: string, type: string): Promise<Record<string, unknown> | undefined> {
    return getAccountData(this.deps.db.knex, userId, roomId, type);
  }
}
