import type { Db } from '../storage/database.js';

// Spec: "Transaction identifiers" — a retry with the same txnId from the same device returns the first
// response and changes nothing. The in-flight map covers a retry that arrives before the first finishes.
export class TransactionStore {
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(private readonly db: Db) {}

  async run<T>(key: { userId: string; deviceId: string | undefined; scope: string; txnId: string }, fn: () => Promise<T>): Promise<T> {
    const deviceId = key.deviceId ?? '';
    const mapKey = JSON.stringify([key.userId, deviceId, key.scope, key.txnId]);
    const pending = this.inFlight.get(mapKey);
    if (pending) return (await pending) as T;
    const work = (async () => {
      const row = await this.db('transaction_responses')
        .where({ user_id: key.userId, device_id: deviceId, scope: key.scope, txn_id: key.txnId })
        .first('response_json');
      if (row) return JSON.parse(row.response_json) as T;
      const result = await fn();
      await this.db('transaction_responses')
        .insert({
          user_id: key.userId,
          device_id: deviceId,
          scope: key.scope,
          txn_id: key.txnId,
          response_json: JSON.stringify(result),
          created_ts: Date.now(),
        })
        .onConflict(['user_id', 'device_id', 'scope', 'txn_id'])
        .ignore();
      return result;
    })();
    this.inFlight.set(mapKey, work);
    try {
      return await work;
    } finally {
      this.inFlight.delete(mapKey);
    }
  }
}
