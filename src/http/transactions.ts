import type { Knex } from 'knex';
import type { Db } from '../storage/database.js';

export interface TransactionKey {
  userId: string;
  deviceId: string | undefined;
  scope: string;
  txnId: string;
}

/**
 * Runs `work` inside the caller's stream-write transaction `trx` unless this transaction id already ran, and
 * records its response in that same transaction: the write and its txnId commit together or not at all.
 */
export type Once<T> = (trx: Knex.Transaction, work: () => Promise<T>) => Promise<T>;

// Spec: "Transaction identifiers" — a retry with the same txnId from the same device returns the first
// response and changes nothing. The in-flight map covers a retry that arrives before the first finishes;
// the row written with the change itself covers a retry after a crash or from another process.
export class TransactionStore {
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(private readonly db: Db) {}

  /** `fn` must call `once` exactly around its write, inside its own stream-write transaction. */
  async run<T>(key: TransactionKey, fn: (once: Once<T>) => Promise<T>): Promise<T> {
    const where = this.where(key);
    const mapKey = JSON.stringify([where.user_id, where.device_id, where.scope, where.txn_id]);
    const pending = this.inFlight.get(mapKey);
    if (pending) return (await pending) as T;
    const work = (async () => {
      const stored = await this.stored<T>(this.db, where);
      if (stored) return stored.response;
      return fn(async (trx, write) => {
        // Stream writes are serialised (single SQLite connection, advisory lock on PostgreSQL), so this
        // read cannot race another process's insert of the same key.
        const earlier = await this.stored<T>(trx, where);
        if (earlier) return earlier.response;
        const response = await write();
        await trx('transaction_responses').insert({ ...where, response_json: JSON.stringify(response), created_ts: Date.now() });
        return response;
      });
    })();
    this.inFlight.set(mapKey, work);
    try {
      return await work;
    } finally {
      this.inFlight.delete(mapKey);
    }
  }

  private where(key: TransactionKey): { user_id: string; device_id: string; scope: string; txn_id: string } {
    return { user_id: key.userId, device_id: key.deviceId ?? '', scope: key.scope, txn_id: key.txnId };
  }

  private async stored<T>(db: Db, where: ReturnType<TransactionStore['where']>): Promise<{ response: T } | undefined> {
    const row = await db('transaction_responses').where(where).first('response_json');
    return row ? { response: JSON.parse(row.response_json) as T } : undefined;
  }
}
