import type { HomeserverConfig } from '../config/schema.js';
import { generateSigningKey } from '../crypto/signing.js';
import { createLogger } from '../logger.js';
import { MediaStore } from '../media/store.js';
import { PushRulesService } from '../push/rulesService.js';
import { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { describeDatabase, openDatabase } from '../storage/database.js';
import { claimServerName } from '../storage/serverIdentity.js';
import { AccountDataService } from '../sync/accountDataService.js';
import { Notifier } from '../sync/notifier.js';
import type { UserExportDeps } from './userExport.js';

/**
 * What `skjol export-data` reads through, without the rest of a homeserver: no listener, no federation or
 * push sender, no background job, so it can run beside a serving process on the same database.
 */
export async function openExportContext(config: HomeserverConfig): Promise<{ deps: UserExportDeps; close(): Promise<void> }> {
  const db = await openDatabase(config.database);
  try {
    await claimServerName(db.knex, config.server_name, describeDatabase(config.database));
  } catch (err) {
    await db.close();
    throw err;
  }
  const notifier = new Notifier();
  const base: ServiceDeps = {
    config,
    serverName: config.server_name,
    logger: createLogger(config.log_level),
    db,
    clock: { now: () => Date.now() },
    notifier,
    // The export signs nothing: a throwaway key, so the server's own key file is neither read nor created.
    signingKey: generateSigningKey(),
  };
  const deps: UserExportDeps = {
    db,
    serverName: config.server_name,
    clock: base.clock,
    rooms: new RoomService(base),
    // The rule set the server serves (homeserver.ts passes the same option), so the export matches /pushrules.
    pushRules: new PushRulesService({ db, logger: base.logger, accountData: new AccountDataService({ db, notifier }) }, { legacyMentions: config.push.legacy_mention_rules }),
    mediaStore: new MediaStore(config.media_store_path),
  };
  return { deps, close: () => db.close() };
}
