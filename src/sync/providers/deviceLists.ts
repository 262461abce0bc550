import type { DeviceListService } from '../../e2ee/deviceLists.js';
import type { SyncContext, SyncProvider } from '../provider.js';

// device_lists.changed / left: only in incremental syncs; an initial sync makes the client query everyone.
export class DeviceListsProvider implements SyncProvider {
  readonly topic = 'deviceLists' as const;

  constructor(private readonly deviceLists: DeviceListService) {}

  latest(): Promise<number> {
    return this.deviceLists.latest();
  }

  async complete(): Promise<void> {}

  async incremental(ctx: SyncContext, from: number, to: number): Promise<boolean> {
    const since = ctx.since!;
    const delta = await this.deviceLists.delta(ctx.userId, { deviceLists: from, timeline: since.timeline }, { deviceLists: to, timeline: ctx.to.timeline });
    for (const u of delta.changed) ctx.response.deviceLists.changed.add(u);
    for (const u of delta.left) ctx.response.deviceLists.left.add(u);
    return delta.changed.length + delta.left.length > 0;
  }
}
