import type { DeviceKeysService } from '../../e2ee/deviceKeysService.js';
import type { ToDeviceService } from '../../e2ee/toDevice.js';
import type { SyncContext, SyncProvider } from '../provider.js';

// To-device messages for the syncing device, plus its one-time key counts and unused fallback key types,
// which every response carries (spec: "Extensions to /sync" of "End-to-End Encryption").
export class ToDeviceProvider implements SyncProvider {
  readonly topic = 'toDevice' as const;

  constructor(private readonly deps: { toDevice: ToDeviceService; deviceKeys: DeviceKeysService }) {}

  latest(): Promise<number> {
    return this.deps.toDevice.latest();
  }

  async complete(ctx: SyncContext, to: number): Promise<void> {
    await this.deliver(ctx, 0, to);
  }

  incremental(ctx: SyncContext, from: number, to: number): Promise<boolean> {
    return this.deliver(ctx, from, to);
  }

  private async deliver(ctx: SyncContext, from: number, to: number): Promise<boolean> {
    if (!ctx.deviceId) return false;
    const { events, position } = await this.deps.toDevice.forSync(ctx.userId, ctx.deviceId, from, to);
    ctx.response.toDevice.push(...events);
    if (position !== to) ctx.nextPositions.toDevice = position;
    ctx.response.oneTimeKeysCount = await this.deps.deviceKeys.oneTimeKeyCounts(ctx.userId, ctx.deviceId);
    ctx.response.unusedFallbackKeyTypes = await this.deps.deviceKeys.unusedFallbackKeyTypes(ctx.userId, ctx.deviceId);
    // Key counts ride along on every response but are not news that ends a long-poll.
    return events.length > 0;
  }
}
