import type { SyncProvider } from '../provider.js';
import type { SyncTopic } from '../token.js';

/**
 * A topic that has no data source yet (to-device, device lists, receipts, typing, presence): its
 * position stays 0, but the token already carries it. The E2EE and EDU work replace these through
 * SyncService.registerProvider().
 */
export class EmptyProvider implements SyncProvider {
  constructor(readonly topic: SyncTopic) {}

  async latest(): Promise<number> {
    return 0;
  }

  async complete(): Promise<void> {}

  async incremental(): Promise<boolean> {
    return false;
  }
}
