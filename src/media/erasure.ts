import type { Logger } from 'pino';
import type { Db } from '../storage/database.js';
import * as repo from '../storage/repositories/media.js';
import type { MediaStore } from './store.js';

// Erasure of a user's media (issue 13: deactivation with `erase: true`): every item they uploaded or
// reserved goes, bytes, thumbnails and rows. Run from the onDeactivated hook, which may run again after a
// crash, so each step is safe to repeat.

export interface MediaErasureDeps {
  db: { knex: Db };
  store: MediaStore;
  logger: Logger;
}

const BATCH = 200;

/** Deletes every media item `userId` uploaded; returns how many. Idempotent. */
export async function eraseUserMedia(deps: MediaErasureDeps, userId: string): Promise<number> {
  let total = 0;
  for (;;) {
    const ids = await repo.mediaIdsOfUser(deps.db.knex, userId, BATCH);
    if (ids.length === 0) break;
    // Files before rows: the rows are the to-do list a re-run after a crash finds again. In between, a
    // download finds a row without its file and answers 404.
    for (const id of ids) await deps.store.remove(id);
    await deps.db.knex.transaction((trx) => repo.deleteMedia(trx, ids));
    // A thumbnail being generated while the files went may have been written since: remove it too.
    for (const id of ids) await deps.store.remove(id);
    total += ids.length;
    if (ids.length < BATCH) break;
  }
  if (total > 0) deps.logger.info({ count: total }, 'erased a deactivated user’s media');
  return total;
}
