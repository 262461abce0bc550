/**
 * Picks the end-to-end encryption parts out of an application service transaction: to-device messages
 * (MSC2409), device list changes, one-time key counts and unused fallback key types (MSC3202), under their
 * unstable names (Synapse, Skjól) or their stable ones.
 */
import { dict } from '../../util/dict.js';

/** A to-device event as the OlmMachine takes it. */
export interface ToDeviceEvent {
  type: string;
  sender: string;
  content: Record<string, unknown>;
}

/** What one device of one user receives from a transaction. */
export interface DeviceCryptoInput {
  toDevice: ToDeviceEvent[];
  /** algorithm → count, when the transaction has counts for this device (missing algorithms mean zero). */
  oneTimeKeyCounts?: Record<string, number>;
  /** When the transaction says which fallback key types are still unused on the server. */
  unusedFallbackKeyTypes?: string[];
}

export interface CryptoTransaction {
  deviceLists: { changed: string[]; left: string[] };
  /** userId → deviceId (or `*` for every device of the user) → input. */
  devices: Map<string, Map<string, DeviceCryptoInput>>;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);

/** The first of `names` that is present in the body (unstable names first, so one source is used, never both). */
function field(body: Json, names: readonly string[]): unknown {
  for (const n of names) if (body[n] !== undefined && body[n] !== null) return body[n];
  return undefined;
}

const TO_DEVICE = ['de.sorunome.msc2409.to_device', 'to_device'] as const;
const DEVICE_LISTS = ['org.matrix.msc3202.device_lists', 'device_lists'] as const;
const OTK_COUNTS = [
  'org.matrix.msc3202.device_one_time_keys_count',
  'org.matrix.msc3202.device_one_time_key_counts',
  'device_one_time_keys_count',
  'device_one_time_key_counts',
] as const;
const FALLBACK_TYPES = ['org.matrix.msc3202.device_unused_fallback_key_types', 'device_unused_fallback_key_types'] as const;

export function parseCryptoTransaction(body: Json): CryptoTransaction {
  const devices = new Map<string, Map<string, DeviceCryptoInput>>();
  const input = (userId: string, deviceId: string): DeviceCryptoInput => {
    let perUser = devices.get(userId);
    if (!perUser) devices.set(userId, (perUser = new Map()));
    let d = perUser.get(deviceId);
    if (!d) perUser.set(deviceId, (d = { toDevice: [] }));
    return d;
  };

  const toDevice = field(body, TO_DEVICE);
  if (Array.isArray(toDevice)) {
    for (const m of toDevice) {
      if (!isObject(m)) continue;
      const { type, sender, content, to_user_id: userId, to_device_id: deviceId } = m;
      if (typeof type !== 'string' || typeof sender !== 'string' || !isObject(content)) continue;
      if (typeof userId !== 'string' || typeof deviceId !== 'string') continue;
      input(userId, deviceId).toDevice.push({ type, sender, content });
    }
  }

  const counts = field(body, OTK_COUNTS);
  if (isObject(counts)) {
    for (const [userId, perDevice] of Object.entries(counts)) {
      if (!isObject(perDevice)) continue;
      for (const [deviceId, perAlg] of Object.entries(perDevice)) {
        if (!isObject(perAlg)) continue;
        const c = dict<number>();
        for (const [alg, n] of Object.entries(perAlg)) if (typeof n === 'number' && Number.isFinite(n)) c[alg] = n;
        input(userId, deviceId).oneTimeKeyCounts = c;
      }
    }
  }

  const fallback = field(body, FALLBACK_TYPES);
  if (isObject(fallback)) {
    for (const [userId, perDevice] of Object.entries(fallback)) {
      if (!isObject(perDevice)) continue;
      for (const [deviceId, types] of Object.entries(perDevice)) {
        if (Array.isArray(types)) input(userId, deviceId).unusedFallbackKeyTypes = strings(types);
      }
    }
  }

  const lists = field(body, DEVICE_LISTS);
  const deviceLists = isObject(lists) ? { changed: strings(lists.changed), left: strings(lists.left) } : { changed: [], left: [] };
  return { deviceLists, devices };
}

/** What the device `deviceId` of `userId` gets from the transaction (messages to `*` included). */
export function inputFor(txn: CryptoTransaction, userId: string, deviceId: string): DeviceCryptoInput | undefined {
  const perUser = txn.devices.get(userId);
  if (!perUser) return undefined;
  const exact = perUser.get(deviceId);
  const all = perUser.get('*');
  if (!all) return exact;
  if (!exact) return all;
  return { ...exact, toDevice: [...exact.toDevice, ...all.toDevice] };
}
