import { MatrixError, notFound } from '../errors.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { deleteDevices, insertDevice } from '../storage/repositories/devices.js';
import * as repo from '../storage/repositories/e2ee.js';
import type { DeviceKeysService, KeysUploadBody } from './deviceKeysService.js';
import type { DeviceListService } from './deviceLists.js';

export interface DehydratedDeviceUpload extends KeysUploadBody {
  device_id: string;
  device_data: Record<string, unknown>;
  initial_device_display_name?: string | undefined;
}

const EVENTS_BATCH = 100;

/**
 * MSC3814 dehydrated devices: one hidden device per user that receives to-device messages (room keys)
 * while all of the user's real devices are offline.
 */
export class DehydratedDeviceService {
  constructor(
    private readonly deps: ServiceDeps,
    private readonly deviceKeys: DeviceKeysService,
    private readonly deviceLists: DeviceListService,
  ) {}

  async put(userId: string, body: DehydratedDeviceUpload): Promise<{ device_id: string }> {
    await this.deps.db.write(async (trx) => {
      const previous = await trx('dehydrated_devices').where({ user_id: userId }).first('device_id');
      if (previous) {
        await deleteDevices(trx, userId, [previous.device_id]);
        await repo.deleteDeviceE2ee(trx, userId, [previous.device_id]);
      }
      const created = await insertDevice(trx, {
        userId,
        deviceId: body.device_id,
        displayName: body.initial_device_display_name ?? 'Dehydrated device',
        createdTs: this.deps.clock.now(),
      });
      if (!created) throw new MatrixError('M_INVALID_PARAM', 'A device with this ID already exists');
      await trx('devices').where({ user_id: userId, device_id: body.device_id }).update({ hidden: true });
      await trx('dehydrated_devices')
        .insert({ user_id: userId, device_id: body.device_id, device_data: JSON.stringify(body.device_data) })
        .onConflict('user_id')
        .merge(['device_id', 'device_data']);
      await this.deviceKeys.writeKeys(trx, userId, body.device_id, body);
      await this.deviceLists.recordChange(trx, userId);
    });
    await this.deviceLists.notifyChange(userId);
    return { device_id: body.device_id };
  }

  async get(userId: string): Promise<{ device_id: string; device_data: Record<string, unknown> }> {
    const row = await this.deps.db.knex('dehydrated_devices').where({ user_id: userId }).first();
    if (!row) throw notFound('No dehydrated device');
    return { device_id: row.device_id, device_data: JSON.parse(row.device_data) };
  }

  async delete(userId: string): Promise<{ device_id: string }> {
    const deviceId = await this.deps.db.write(async (trx) => {
      const row = await trx('dehydrated_devices').where({ user_id: userId }).first('device_id');
      if (!row) throw notFound('No dehydrated device');
      await trx('dehydrated_devices').where({ user_id: userId }).delete();
      await deleteDevices(trx, userId, [row.device_id]);
      await repo.deleteDeviceE2ee(trx, userId, [row.device_id]);
      await this.deviceLists.recordChange(trx, userId);
      return row.device_id as string;
    });
    await this.deviceLists.notifyChange(userId);
    return { device_id: deviceId };
  }

  /** Messages are not deleted as they are read, so an aborted rehydration can start again. */
  async events(userId: string, deviceId: string, nextBatch: string | undefined): Promise<{ events: unknown[]; next_batch: string }> {
    const row = await this.deps.db.knex('dehydrated_devices').where({ user_id: userId }).first('device_id');
    if (!row || row.device_id !== deviceId) throw new MatrixError('M_FORBIDDEN', 'Not your dehydrated device');
    const from = nextBatch === undefined ? 0 : Number(nextBatch);
    if (!Number.isSafeInteger(from) || from < 0) throw new MatrixError('M_INVALID_PARAM', 'Invalid next_batch');
    const rows = await repo.toDeviceAfter(this.deps.db.knex, userId, deviceId, from, Number.MAX_SAFE_INTEGER, EVENTS_BATCH);
    const last = rows.length ? rows[rows.length - 1]!.streamId : from;
    return { events: rows.map((r) => ({ sender: r.sender, type: r.type, content: r.content })), next_batch: String(last) };
  }
}
