import type { Knex } from 'knex';
import type { Logger } from 'pino';

/** A transaction plus work to do once it has committed (cache eviction, hooks, notifier). */
export interface Work {
  db: Knex.Transaction;
  afterCommit(fn: () => void | Promise<void>): void;
}

export async function inTransaction<T>(knex: Knex, logger: Logger, fn: (work: Work) => Promise<T>): Promise<T> {
  const after: Array<() => void | Promise<void>> = [];
  const result = await knex.transaction((trx) => fn({ db: trx, afterCommit: (f) => after.push(f) }));
  for (const f of after) {
    try {
      await f();
    } catch (err) {
      logger.error({ err }, 'after-commit step failed');
    }
  }
  return result;
}
