import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import type { Clock } from '../serviceDeps.js';
import type { Database } from '../storage/database.js';
import * as repo from '../storage/repositories/pushers.js';
import type { PusherRow } from '../storage/repositories/pushers.js';
import type { HomeserverConfig } from '../config/schema.js';
import { outboundPolicyOf } from '../net/outboundPolicy.js';
import { PushDelivery, type DeliveryOptions, type PushTarget } from './delivery.js';
import type { NotifiedEvent } from './processor.js';

// Spec: Client-Server API, "Push Notifications" → GET /pushers, POST /pushers/set; Push Gateway API.

export const NOTIFY_PATH = '/_matrix/push/v1/notify';

export interface SetPusherBody {
  pushkey: string;
  kind: string | null;
  app_id: string;
  app_display_name?: string | undefined;
  device_display_name?: string | undefined;
  profile_tag?: string | undefined;
  lang?: string | undefined;
  data?: Record<string, unknown> | undefined;
  append?: boolean | undefined;
}

export function pusherToJson(p: PusherRow): Record<string, unknown> {
  return {
    pushkey: p.pushkey,
    kind: p.kind,
    app_id: p.appId,
    app_display_name: p.appDisplayName,
    device_display_name: p.deviceDisplayName,
    ...(p.profileTag !== null ? { profile_tag: p.profileTag } : {}),
    lang: p.lang,
    data: p.data,
  };
}

const missing = (field: string) => new MatrixError('M_MISSING_PARAM', `Missing parameter '${field}'`);
const invalid = (msg: string) => new MatrixError('M_INVALID_PARAM', msg);

/** `data.url` of an http pusher: an http(s) URL whose path is the notify endpoint (as Synapse checks). */
export function checkPushUrl(url: unknown): string {
  if (typeof url !== 'string') throw missing('data.url');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid("'data.url' must be an absolute URL");
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw invalid("'data.url' must be an http(s) URL");
  if (parsed.pathname !== NOTIFY_PATH) throw invalid(`'data.url' must have a path of '${NOTIFY_PATH}'`);
  return url;
}

export interface PusherServiceDeps {
  db: Database;
  logger: Logger;
  clock: Clock;
  config: Pick<HomeserverConfig, 'ip_range_blacklist' | 'ip_range_whitelist'>;
}

export interface UnreadTotals {
  /** The badge: notifications the user has not read across all rooms. */
  unread(userId: string): Promise<number>;
}

export class PusherService {
  readonly delivery: PushDelivery;

  constructor(
    private readonly deps: PusherServiceDeps,
    deliveryOptions: Partial<DeliveryOptions> = {},
  ) {
    this.delivery = new PushDelivery(
      {
        logger: deps.logger,
        outbound: outboundPolicyOf(deps.config),
        onRejected: async (t) => {
          this.deps.logger.info({ appId: t.appId }, 'push gateway rejected a pushkey; pusher removed');
          await repo.deletePusher(this.deps.db.knex, t.userId, t.appId, t.pushkey);
        },
      },
      deliveryOptions,
    );
  }

  async list(userId: string): Promise<Array<Record<string, unknown>>> {
    return (await repo.listPushers(this.deps.db.knex, userId)).map(pusherToJson);
  }

  /** POST /pushers/set */
  async set(userId: string, deviceId: string | undefined, body: SetPusherBody): Promise<void> {
    if (body.app_id.length === 0 || body.app_id.length > 64) throw invalid("'app_id' must be 1 to 64 characters");
    if (body.pushkey.length === 0 || Buffer.byteLength(body.pushkey, 'utf8') > 512) throw invalid("'pushkey' must be 1 to 512 bytes");
    const db = this.deps.db.knex;
    if (body.kind === null) {
      await repo.deletePusher(db, userId, body.app_id, body.pushkey);
      this.delivery.forget({ userId, appId: body.app_id, pushkey: body.pushkey });
      return;
    }
    if (body.kind !== 'http') throw invalid(`Unsupported pusher kind '${body.kind}': only 'http' pushers are supported`);
    if (body.app_display_name === undefined) throw missing('app_display_name');
    if (body.device_display_name === undefined) throw missing('device_display_name');
    if (body.lang === undefined) throw missing('lang');
    if (body.data === undefined) throw missing('data');
    checkPushUrl(body.data.url);
    // Any other format means the full notification (as Synapse, which stores what it is given).
    await this.deps.db.write(async (trx) => {
      if (!body.append) {
        for (const other of await repo.deletePushersOfOtherUsers(trx, userId, body.app_id, body.pushkey)) {
          this.delivery.forget({ userId: other, appId: body.app_id, pushkey: body.pushkey });
        }
      }
      await repo.upsertPusher(trx, {
        userId,
        appId: body.app_id,
        pushkey: body.pushkey,
        kind: body.kind!,
        appDisplayName: body.app_display_name!,
        deviceDisplayName: body.device_display_name!,
        profileTag: body.profile_tag ?? null,
        lang: body.lang!,
        data: body.data!,
        deviceId: deviceId ?? null,
        createdTs: this.deps.clock.now(),
      });
    });
  }

  /** Devices were deleted (logout, device deletion): their pushers go with them. */
  async deleteForDevices(userId: string, deviceIds: readonly string[]): Promise<void> {
    const wanted = new Set(deviceIds);
    for (const p of await repo.listPushers(this.deps.db.knex, userId)) {
      if (p.deviceId !== null && wanted.has(p.deviceId)) {
        await repo.deletePusher(this.deps.db.knex, userId, p.appId, p.pushkey);
        this.delivery.forget(p);
      }
    }
  }

  async deleteAllForUser(userId: string): Promise<void> {
    for (const p of await repo.listPushers(this.deps.db.knex, userId)) {
      await repo.deletePusher(this.deps.db.knex, userId, p.appId, p.pushkey);
      this.delivery.forget(p);
    }
  }

  /** Queues a push to every pusher of every notified user (spec: Push Gateway API, "notification"). */
  async deliver(notified: readonly NotifiedEvent[], totals: UnreadTotals): Promise<void> {
    if (notified.length === 0) return;
    const users = [...new Set(notified.map((n) => n.userId))];
    const pushers = await repo.pushersForUsers(this.deps.db.knex, users);
    if (pushers.length === 0) return;
    const byUser = new Map<string, PusherRow[]>();
    for (const p of pushers) {
      if (p.kind !== 'http' || typeof p.data.url !== 'string') continue;
      const list = byUser.get(p.userId) ?? [];
      list.push(p);
      byUser.set(p.userId, list);
    }
    const unread = new Map<string, number>();
    for (const n of notified) {
      const own = byUser.get(n.userId);
      if (!own) continue;
      if (!unread.has(n.userId)) unread.set(n.userId, await totals.unread(n.userId));
      for (const p of own) {
        const target: PushTarget = { userId: p.userId, appId: p.appId, pushkey: p.pushkey, url: p.data.url as string };
        this.delivery.enqueue(target, { notification: notificationBody(n, p, unread.get(n.userId)!) });
      }
    }
  }

  /** Queues a badge-only push (counts and devices, no event) to every pusher of the user, as Synapse's `_send_badge`. */
  async deliverBadge(userId: string, unread: number): Promise<void> {
    for (const p of await repo.pushersForUsers(this.deps.db.knex, [userId])) {
      if (p.kind !== 'http' || typeof p.data.url !== 'string') continue;
      const { url, ...dataMinusUrl } = p.data;
      const device = { app_id: p.appId, pushkey: p.pushkey, pushkey_ts: Math.floor(p.createdTs / 1000), data: dataMinusUrl };
      this.delivery.enqueue({ userId: p.userId, appId: p.appId, pushkey: p.pushkey, url }, { notification: { counts: { unread }, devices: [device] } });
    }
  }

  close(): void {
    this.delivery.close();
  }
}

/** The `notification` object for one pusher; `event_id_only` pushers get the ids, counts and devices only. */
export function notificationBody(n: NotifiedEvent, p: PusherRow, unread: number): Record<string, unknown> {
  const { url: _url, ...dataMinusUrl } = p.data;
  const tweaks = n.evaluation.tweaks;
  const device = {
    app_id: p.appId,
    pushkey: p.pushkey,
    pushkey_ts: Math.floor(p.createdTs / 1000),
    data: dataMinusUrl,
    tweaks,
  };
  const pdu = n.event.pdu;
  // As Synapse does: encrypted events and those that highlight or make a sound wake the device.
  const prio = pdu.type === 'm.room.encrypted' || tweaks.highlight === true || tweaks.sound !== undefined ? 'high' : 'low';
  const counts = { unread };
  if (p.data.format === 'event_id_only') {
    return { event_id: n.event.eventId, room_id: pdu.room_id, prio, counts, devices: [device] };
  }
  const membership = pdu.type === 'm.room.member' ? (pdu.content as Record<string, unknown>).membership : undefined;
  return {
    // `id` is Synapse's older name for event_id, still sent and read by gateways and SyTest.
    id: n.event.eventId,
    event_id: n.event.eventId,
    room_id: pdu.room_id,
    type: pdu.type,
    sender: pdu.sender,
    ...(n.senderDisplayName ? { sender_display_name: n.senderDisplayName } : {}),
    // As Synapse's calculate_room_name: the name, else the canonical alias.
    ...(n.roomName || n.roomAlias ? { room_name: n.roomName || n.roomAlias } : {}),
    ...(n.roomAlias ? { room_alias: n.roomAlias } : {}),
    ...(pdu.type === 'm.room.member' ? { user_is_target: pdu.state_key === n.userId } : {}),
    ...(typeof membership === 'string' ? { membership } : {}),
    prio,
    content: pdu.content,
    counts,
    devices: [device],
  };
}
